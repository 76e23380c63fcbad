-- +goose Up
-- Less WAL per publish (issue 12: producers insert at a rate bound by WAL
-- flushes, and every byte a worker's publish writes is flushed with theirs).
-- pg_waldump of a publish showed, per notification, beside the two row
-- updates and their index entries, a LOCK record that did no useful work:
-- a BEFORE UPDATE row trigger makes PostgreSQL lock the row before
-- every UPDATE of the table (to hand the trigger a stable OLD), whether or
-- not the trigger's columns or WHEN match: the guard on published targets
-- did this to every publish of notify.notifications. It becomes an AFTER
-- trigger: its WHEN is evaluated as the row is updated, an update it does
-- not concern queues nothing, and the one it refuses is still rolled back
-- with its statement. queue_items keeps its BEFORE trigger (it sets
-- NEW.next_attempt_at): the claim's FOR UPDATE has already locked the row,
-- so it adds no record.
-- (Leaving pages part free, so that the update stays on the row's page, was
-- measured too: under steady load pruning already keeps room, 2.05 against
-- 2.00 LOCK records a notification, not worth a larger history.)

DROP TRIGGER notifications_published_targets_fixed ON notify.notifications;
CREATE TRIGGER notifications_published_targets_fixed
    AFTER UPDATE OF target_user_id, target_roles ON notify.notifications
    FOR EACH ROW
    WHEN (OLD.seq IS NOT NULL AND NEW.seq IS NOT NULL
          AND (OLD.target_user_id IS DISTINCT FROM NEW.target_user_id OR OLD.target_roles IS DISTINCT FROM NEW.target_roles))
    EXECUTE FUNCTION notify.forbid_retargeting();


-- +goose Down
DROP TRIGGER notifications_published_targets_fixed ON notify.notifications;
CREATE TRIGGER notifications_published_targets_fixed
    BEFORE UPDATE OF target_user_id, target_roles ON notify.notifications
    FOR EACH ROW
    WHEN (OLD.seq IS NOT NULL AND NEW.seq IS NOT NULL
          AND (OLD.target_user_id IS DISTINCT FROM NEW.target_user_id OR OLD.target_roles IS DISTINCT FROM NEW.target_roles))
    EXECUTE FUNCTION notify.forbid_retargeting();
