-- +goose Up
-- Reads by audience: a user's resume, history and unread count read only
-- what the user may see, each kind as an index range in seq order (see
-- internal/postgres/audience.go), whatever else the table holds.
--
-- - The notifications that name a user: notifications_target_user_idx
--   (target_user_id, seq), already there.
-- - Broadcasts: a partial index on seq, written only for broadcasts.
-- - Roles: a btree cannot index the elements of an array, and the GIN index
--   finds rows but not in seq order, so publishing writes one row per role
--   of a notification into notify.notification_roles: once per notification
--   and role, never once per recipient.

CREATE INDEX notifications_broadcast_idx ON notify.notifications (seq)
    WHERE target_user_id IS NULL AND target_roles IS NULL;

CREATE TABLE notify.notification_roles (
    role text   NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (role, seq)
);
COMMENT ON TABLE notify.notification_roles IS 'One row per role of each published notification, written when it is published: the index by which a user''s role notifications are read in seq order. Rows of deleted notifications are removed by retention and are harmless meanwhile (reads join notify.notifications).';
COMMENT ON COLUMN notify.notification_roles.role IS 'A role named in the notification''s target_roles.';
COMMENT ON COLUMN notify.notification_roles.seq IS 'The notification''s seq.';
-- Retention removes rows by seq range; seqs arrive in order, so a BRIN is enough.
CREATE INDEX notification_roles_seq_idx ON notify.notification_roles USING brin (seq);

INSERT INTO notify.notification_roles (role, seq)
SELECT DISTINCT r.role, n.seq
FROM notify.notifications n CROSS JOIN LATERAL unnest(n.target_roles) AS r(role)
WHERE n.seq IS NOT NULL AND n.target_roles IS NOT NULL AND r.role IS NOT NULL;

-- The targets of a published notification are what it was delivered by;
-- changing them afterwards would make history disagree with what was sent.
-- (Un-number it first: set seq and published_at to NULL, then retry it.)
-- +goose StatementBegin
CREATE FUNCTION notify.forbid_retargeting() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the targets of a published notification cannot change'
        USING ERRCODE = 'check_violation', SCHEMA = 'notify', TABLE = 'notifications',
              CONSTRAINT = 'notifications_published_targets_fixed',
              HINT = 'To send it again to other targets, set seq and published_at to NULL in the same UPDATE, then retry its queue item.';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER notifications_published_targets_fixed
    BEFORE UPDATE OF target_user_id, target_roles ON notify.notifications
    FOR EACH ROW
    WHEN (OLD.seq IS NOT NULL AND NEW.seq IS NOT NULL
          AND (OLD.target_user_id IS DISTINCT FROM NEW.target_user_id OR OLD.target_roles IS DISTINCT FROM NEW.target_roles))
    EXECUTE FUNCTION notify.forbid_retargeting();

-- +goose Down
DROP TRIGGER notifications_published_targets_fixed ON notify.notifications;
DROP FUNCTION notify.forbid_retargeting();
DROP TABLE notify.notification_roles;
DROP INDEX notify.notifications_broadcast_idx;
