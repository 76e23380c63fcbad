-- retry_failed_item.sql: put one failed queue item back in line, now.
--
-- Run:
--   psql "$DATABASE_URL" -v id=42 -f sql/retry_failed_item.sql
--
-- Parameters:
--   id  the queue item id (queue_items.id, as in the sample_ids of
--       failures_by_error.sql); required
--
-- What it does, in one transaction: if item id is failed, it becomes
-- pending with attempts 0 (a fresh set of max_attempts tries),
-- next_attempt_at now() and updated_at now(); then NOTIFY notify_queue wakes
-- an idle worker at once (it polls anyway, but that can take seconds).
-- last_error is kept: the item still shows why it was failed while it waits
-- (due_pending.sql lists it), and the worker overwrites it if the next
-- attempt fails and clears it when the item is sent; this is also what
-- `notifyd retry` does. Items in any other status are left alone.
--
-- Output: the retried item (none, and a warning on stderr, when item id is
-- not failed):
--   id               queue item id
--   notification_id  the notification it delivers
--   attempts_before  tries it had used up
--   failed_at        when it was marked failed (its updated_at before)
--   last_error       why it failed (kept)
--
-- See also retry_failed_matching.sql and retry_failed_all.sql.

\set ON_ERROR_STOP on
\if :{?id}
\else
    DO $$ BEGIN RAISE EXCEPTION 'retry_failed_item.sql needs the queue item id: psql "$DATABASE_URL" -v id=42 -f sql/retry_failed_item.sql'; END $$;
\endif

BEGIN;

WITH picked AS (
    SELECT id, attempts, updated_at
    FROM notify.queue_items
    WHERE id = :'id'::bigint AND status = 'failed'
    FOR UPDATE
), retried AS (
    UPDATE notify.queue_items q
    SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
    FROM picked p
    WHERE q.id = p.id
    RETURNING q.id, q.notification_id, p.attempts AS attempts_before, p.updated_at AS failed_at, q.last_error
)
SELECT id, notification_id, attempts_before, failed_at, last_error
FROM retried
ORDER BY failed_at, id;

SELECT :ROW_COUNT = 0 AS retried_nothing \gset
\if :retried_nothing
    \warn 'retry_failed_item.sql: no failed queue item has id' :id
\endif

NOTIFY notify_queue;
COMMIT;
