-- due_pending.sql: which pending items could a worker claim right now, and
-- how long have they been waiting past their due time? Most overdue first.
--
-- Run:
--   psql "$DATABASE_URL" -f sql/due_pending.sql
--   psql "$DATABASE_URL" -v limit=20 -f sql/due_pending.sql
--
-- Parameters:
--   limit  how many items to show (default 100); the count of all due items
--          is in queue_counts.sql (column due)
--
-- Output, one row per due item (next_attempt_at <= now()), in the order the
-- workers claim them (next_attempt_at, then id):
--   id               queue item id (queue_items.id)
--   notification_id  the notification it delivers
--   next_attempt_at  when it became due
--   overdue          how long ago that was (now() - next_attempt_at, whole
--                    seconds); a healthy queue keeps this under a few seconds
--   attempts         tries so far (an item with attempts > 0 failed before
--                    and is back for another try)
--   max_attempts     tries before it is failed
--   created_at       when the item was created
--   module           the notification's module
--   last_error       why its last attempt failed (empty if none did)
--
-- Pending items that are not due yet (waiting out a back-off) are left out.
--
-- Cost: an index scan of queue_items_claim_idx (the workers' own claim index,
-- partial on status = 'pending'), stopping after limit rows.

\set ON_ERROR_STOP on
\if :{?limit}
\else
    \set limit 100
\endif

SELECT q.id, q.notification_id, q.next_attempt_at,
       date_trunc('second', now() - q.next_attempt_at) AS overdue,
       q.attempts, q.max_attempts, q.created_at, n.module, q.last_error
FROM notify.queue_items q
JOIN notify.notifications n ON n.id = q.notification_id
WHERE q.status = 'pending' AND q.next_attempt_at <= now()
ORDER BY q.next_attempt_at, q.id
LIMIT :'limit'::integer;
