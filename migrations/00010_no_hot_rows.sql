-- +goose Up
-- Nothing on the path of every batch rewrites a row any more, and nothing the
-- workers scan grows with dead tuples (measured with `notifyd-bench -phases
-- snapshot`: while another session held one snapshot, commit -> receipt p99
-- went from 36 ms to 133 s within two minutes at 1,000 inserts/s). A held
-- snapshot (a forgotten psql session, a long report, pg_dump) keeps vacuum
-- from removing any row version newer than it, so:
--
-- 1. The one-row notify.stream_head, updated by every publish, grew a version
--    chain every reader and publisher had to walk. Seqs now come from a
--    sequence, taken while holding a transaction advisory lock
--    (1852797545, 3) until commit: publishers still take seqs one after the
--    other and commit in that order, so seqs become visible in commit order,
--    and no row is written for it. A publish that rolls back leaves a gap in
--    the seqs, which resumes and the feed read by range do not mind.
-- 2. notify.stream_head becomes a view: last_seq is the highest committed seq
--    (the seq index's last entry), truncated_before the newest retention mark,
--    a row inserted per retention batch (notify.retention_marks). Updating the
--    view still works for admins and restores: last_seq moves the sequence,
--    truncated_before records a mark.
-- 3. A queue item's due time is the moment it was queued (the INSERT
--    statement's start) rather than its producer's transaction start, and an
--    item that becomes pending again (an admin's repair, a release) is due no
--    earlier than that moment. Workers look for new work among items due in
--    the last moments only (an index range that holds few dead entries,
--    however many there are before it), and sweep the whole queue now and then
--    for what that missed.

CREATE SEQUENCE notify.notification_seq AS bigint;
COMMENT ON SEQUENCE notify.notification_seq IS 'Seqs handed out to published notifications; taken only while holding advisory lock (1852797545, 3) until commit, so they become visible in commit order.';
SELECT setval('notify.notification_seq', GREATEST(last_seq, 1), last_seq > 0) FROM notify.stream_head;

CREATE TABLE notify.retention_marks (
    seq       bigint      PRIMARY KEY,
    floor     bigint      NOT NULL DEFAULT 0,
    marked_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_marks_floor_check CHECK (floor BETWEEN 0 AND seq)
);
COMMENT ON TABLE notify.retention_marks IS 'How far retention has gone: a row per retention batch that moved it (older ones are removed as new ones come), so no row is rewritten over and over. The newest row counts.';
COMMENT ON COLUMN notify.retention_marks.seq IS 'Retention has deleted notifications with seqs up to this one (some below may remain, if they were locked when their batch ran): a resume from below it is answered with replay "truncated".';
COMMENT ON COLUMN notify.retention_marks.floor IS 'Every notification with a seq up to this one is gone: the next batch starts above it.';
COMMENT ON COLUMN notify.retention_marks.marked_at IS 'When the batch ran.';
INSERT INTO notify.retention_marks (seq) SELECT truncated_before FROM notify.stream_head WHERE truncated_before > 0;

DROP VIEW notify.stream_state;
DROP TABLE notify.stream_head;

CREATE VIEW notify.stream_head AS
SELECT true AS id,
       GREATEST(COALESCE((SELECT max(seq) FROM notify.notifications), 0), t.truncated_before) AS last_seq,
       t.truncated_before,
       (SELECT n.published_at FROM notify.notifications n WHERE n.seq = (SELECT max(seq) FROM notify.notifications)) AS published_at
FROM (SELECT COALESCE((SELECT max(seq) FROM notify.retention_marks), 0) AS truncated_before) t;
COMMENT ON VIEW notify.stream_head IS 'The stream''s position: the highest committed seq and the retention point. Updating last_seq moves the seq sequence (after a restore); updating truncated_before records a retention mark.';
COMMENT ON COLUMN notify.stream_head.id IS 'Always true: there is exactly one row.';
COMMENT ON COLUMN notify.stream_head.last_seq IS 'The highest committed seq (or the retention point when everything was deleted).';
COMMENT ON COLUMN notify.stream_head.truncated_before IS 'Retention has deleted notifications with seq up to this value; a resume from below it is answered with replay "truncated".';
COMMENT ON COLUMN notify.stream_head.published_at IS 'When the notification with the highest seq was published.';

-- +goose StatementBegin
CREATE FUNCTION notify.stream_head_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    IF NEW.last_seq IS DISTINCT FROM OLD.last_seq THEN
        IF NEW.last_seq IS NULL OR NEW.last_seq < 0 THEN
            RAISE EXCEPTION 'stream_head.last_seq must be a seq (0 or more), not %', NEW.last_seq;
        END IF;
        -- Never below a seq already given: the next publish would reuse it.
        PERFORM pg_advisory_xact_lock(1852797545, 3);
        next_seq := GREATEST(NEW.last_seq, COALESCE((SELECT max(seq) FROM notify.notifications), 0));
        PERFORM setval('notify.notification_seq', GREATEST(next_seq, 1), next_seq > 0);
    END IF;
    IF NEW.truncated_before IS DISTINCT FROM OLD.truncated_before THEN
        IF NEW.truncated_before IS NULL OR NEW.truncated_before < 0 THEN
            RAISE EXCEPTION 'stream_head.truncated_before must be a seq (0 or more), not %', NEW.truncated_before;
        END IF;
        -- floor 0: retention's next batch looks from the first seq again.
        DELETE FROM notify.retention_marks;
        INSERT INTO notify.retention_marks (seq) SELECT NEW.truncated_before WHERE NEW.truncated_before > 0;
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.stream_head_update() IS 'UPDATE notify.stream_head: last_seq moves the seq sequence (so new notifications are numbered after it), truncated_before replaces the retention marks.';
CREATE TRIGGER stream_head_update INSTEAD OF UPDATE ON notify.stream_head
    FOR EACH ROW EXECUTE FUNCTION notify.stream_head_update();

CREATE VIEW notify.stream_state AS
SELECT h.last_seq, h.published_at AS last_published_at,
       date_trunc('second', now() - h.published_at) AS last_published_age,
       h.truncated_before, u.unpublished, u.oldest_unpublished_at
FROM notify.stream_head h
CROSS JOIN (
    SELECT count(*) AS unpublished, min(created_at) AS oldest_unpublished_at
    FROM notify.notifications WHERE seq IS NULL
) u;
COMMENT ON VIEW notify.stream_state IS 'Where the stream stands: the stream head and the notifications still waiting for a seq.';
COMMENT ON COLUMN notify.stream_state.last_seq IS 'The last seq handed out: the newest SSE event id.';
COMMENT ON COLUMN notify.stream_state.last_published_at IS 'When the last batch was published; NULL before the first.';
COMMENT ON COLUMN notify.stream_state.last_published_age IS 'How long ago that was (whole seconds).';
COMMENT ON COLUMN notify.stream_state.truncated_before IS 'Retention deleted notifications with seq up to this value; resuming from below it replays "truncated".';
COMMENT ON COLUMN notify.stream_state.unpublished IS 'Notifications without a seq yet: pending, processing or failed.';
COMMENT ON COLUMN notify.stream_state.oldest_unpublished_at IS 'created_at of the oldest of them; NULL when every notification is published.';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.enqueue_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE seq IS NOT NULL OR published_at IS NOT NULL) THEN
        RAISE EXCEPTION 'new row for relation "notifications" violates check constraint "notifications_unpublished_on_insert"'
            USING ERRCODE = 'check_violation', SCHEMA = 'notify', TABLE = 'notifications',
                  CONSTRAINT = 'notifications_unpublished_on_insert',
                  DETAIL = 'seq and published_at are set by the worker when it publishes; insert them as NULL.';
    END IF;
    INSERT INTO notify.queue_items (notification_id, next_attempt_at) SELECT id, statement_timestamp() FROM new_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION notify.queue_item_due_when_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.next_attempt_at := GREATEST(NEW.next_attempt_at, statement_timestamp());
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.queue_item_due_when_pending() IS 'An item that becomes pending again is due no earlier than now: workers look for new work among recently due items, so an admin''s repair is picked up at once.';
CREATE TRIGGER queue_items_due_when_pending BEFORE UPDATE OF status ON notify.queue_items
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
    EXECUTE FUNCTION notify.queue_item_due_when_pending();

-- +goose Down
DROP TRIGGER queue_items_due_when_pending ON notify.queue_items;
DROP FUNCTION notify.queue_item_due_when_pending();
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.enqueue_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE seq IS NOT NULL OR published_at IS NOT NULL) THEN
        RAISE EXCEPTION 'new row for relation "notifications" violates check constraint "notifications_unpublished_on_insert"'
            USING ERRCODE = 'check_violation', SCHEMA = 'notify', TABLE = 'notifications',
                  CONSTRAINT = 'notifications_unpublished_on_insert',
                  DETAIL = 'seq and published_at are set by the worker when it publishes; insert them as NULL.';
    END IF;
    INSERT INTO notify.queue_items (notification_id) SELECT id FROM new_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
DROP VIEW notify.stream_state;
CREATE TABLE notify.stream_head_new (
    id               boolean     PRIMARY KEY DEFAULT true CHECK (id),
    last_seq         bigint      NOT NULL DEFAULT 0,
    truncated_before bigint      NOT NULL DEFAULT 0,
    published_at     timestamptz
);
INSERT INTO notify.stream_head_new (last_seq, truncated_before, published_at)
SELECT last_seq, truncated_before, published_at FROM notify.stream_head;
DROP VIEW notify.stream_head;
DROP FUNCTION notify.stream_head_update();
ALTER TABLE notify.stream_head_new RENAME TO stream_head;
ALTER INDEX notify.stream_head_new_pkey RENAME TO stream_head_pkey;
CREATE VIEW notify.stream_state AS
SELECT h.last_seq, h.published_at AS last_published_at,
       date_trunc('second', now() - h.published_at) AS last_published_age,
       h.truncated_before, u.unpublished, u.oldest_unpublished_at
FROM notify.stream_head h
CROSS JOIN (
    SELECT count(*) AS unpublished, min(created_at) AS oldest_unpublished_at
    FROM notify.notifications WHERE seq IS NULL
) u;
DROP TABLE notify.retention_marks;
DROP SEQUENCE notify.notification_seq;
