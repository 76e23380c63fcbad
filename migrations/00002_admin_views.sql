-- +goose Up
-- Views for admins in psql (and for the files in sql/ that read them): the
-- queue at a glance, failures grouped by error, and where the stream stands.
-- They read only through the partial indexes of 00001, except where a comment
-- says a full scan cannot be avoided.

-- One branch per status, each with its own WHERE status = ..., so pending,
-- processing and failed are read through their partial indexes. The sent
-- branch has no index to use: it scans the table (sent items are most of it).
CREATE VIEW notify.queue_state AS
SELECT s.status, s.items, s.oldest_created_at,
       date_trunc('second', now() - s.oldest_created_at) AS oldest_age,
       s.due, s.next_due
FROM (
    SELECT 'pending'::text AS status, count(*) AS items, min(created_at) AS oldest_created_at,
           count(*) FILTER (WHERE next_attempt_at <= now()) AS due, min(next_attempt_at) AS next_due
    FROM notify.queue_items WHERE status = 'pending'
    UNION ALL
    SELECT 'processing', count(*), min(created_at), NULL::bigint, NULL::timestamptz
    FROM notify.queue_items WHERE status = 'processing'
    UNION ALL
    SELECT 'failed', count(*), min(created_at), NULL::bigint, NULL::timestamptz
    FROM notify.queue_items WHERE status = 'failed'
    UNION ALL
    SELECT 'sent', count(*), min(created_at), NULL::bigint, NULL::timestamptz
    FROM notify.queue_items WHERE status = 'sent'
) s;

COMMENT ON VIEW notify.queue_state IS 'The queue at a glance: one row per status (pending, processing, failed, sent), also when no item has it. The sent row counts by a full scan of notify.queue_items; the others use the partial indexes.';
COMMENT ON COLUMN notify.queue_state.status IS 'pending, processing, failed or sent.';
COMMENT ON COLUMN notify.queue_state.items IS 'How many queue items have this status.';
COMMENT ON COLUMN notify.queue_state.oldest_created_at IS 'created_at of the oldest item with this status; NULL when there is none.';
COMMENT ON COLUMN notify.queue_state.oldest_age IS 'How old that oldest item is (now() - oldest_created_at, whole seconds).';
COMMENT ON COLUMN notify.queue_state.due IS 'pending only: items a worker may claim now (next_attempt_at <= now()); NULL for the other statuses.';
COMMENT ON COLUMN notify.queue_state.next_due IS 'pending only: the earliest next_attempt_at (in the past when items are overdue); NULL for the other statuses or when nothing is pending.';

-- Failed items are few; the join to notifications goes by primary key.
CREATE VIEW notify.queue_failures AS
SELECT q.last_error, count(*) AS items,
       min(q.updated_at) AS first_seen, max(q.updated_at) AS last_seen,
       (array_agg(q.id ORDER BY q.updated_at DESC, q.id DESC))[1:5] AS sample_ids,
       COALESCE(array_agg(DISTINCT n.module ORDER BY n.module) FILTER (WHERE n.module IS NOT NULL), '{}') AS modules
FROM notify.queue_items q
JOIN notify.notifications n ON n.id = q.notification_id
WHERE q.status = 'failed'
GROUP BY q.last_error;

COMMENT ON VIEW notify.queue_failures IS 'Failed queue items grouped by their exact last_error (admin cancellations show as ''cancelled by admin''). Reads only the failed items, through their partial index.';
COMMENT ON COLUMN notify.queue_failures.last_error IS 'The error text the items share.';
COMMENT ON COLUMN notify.queue_failures.items IS 'How many failed items have this last_error.';
COMMENT ON COLUMN notify.queue_failures.first_seen IS 'When the first of them was marked failed (the earliest updated_at).';
COMMENT ON COLUMN notify.queue_failures.last_seen IS 'When the latest of them was marked failed (the latest updated_at).';
COMMENT ON COLUMN notify.queue_failures.sample_ids IS 'Up to five queue item ids (queue_items.id), latest failure first: look at them, or retry one with sql/retry_failed_item.sql.';
COMMENT ON COLUMN notify.queue_failures.modules IS 'The distinct modules of their notifications (empty when none has a module).';

-- The unpublished notifications are the ones whose seq is NULL: the unique
-- index on seq holds the NULLs too, so they are counted without a table scan.
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

-- +goose Down
DROP VIEW IF EXISTS notify.stream_state;
DROP VIEW IF EXISTS notify.queue_failures;
DROP VIEW IF EXISTS notify.queue_state;
