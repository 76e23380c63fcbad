-- retry_failed_matching.sql: put the failed queue items that match a filter
-- back in line, now: those failing with one error, or since some time.
--
-- Run:
--   psql "$DATABASE_URL" -v error_like='connection refused' -f sql/retry_failed_matching.sql
--   psql "$DATABASE_URL" -v since='2024-05-01 09:00+00' -f sql/retry_failed_matching.sql
--   psql "$DATABASE_URL" -v error_like='lease expired%' -v since='2024-05-01 09:00+00' -f sql/retry_failed_matching.sql
--
-- Parameters (at least one; given both, an item must match both):
--   error_like  a case-insensitive LIKE pattern on last_error; without a %
--               it matches anywhere in the error (as `notifyd retry`)
--   since       a timestamptz: items marked failed at or after it
--               (updated_at >= since)
-- To retry every failed item, use retry_failed_all.sql: an empty filter is
-- refused so it can never select everything by accident.
--
-- What it does, in one transaction, to each matching failed item: status
-- pending, attempts 0 (a fresh set of max_attempts tries), next_attempt_at
-- now(), updated_at now(); then NOTIFY notify_queue wakes an idle worker at
-- once. last_error is kept: the items still show why they had failed while
-- they wait, and the worker overwrites it if the next attempt fails and
-- clears it when the item is sent (the same rule as `notifyd retry`).
-- Items an admin cancelled can be brought back with -v error_like='cancelled by admin'.
--
-- Output: one row per retried item, oldest failure first:
--   id               queue item id
--   notification_id  the notification it delivers
--   attempts_before  tries it had used up
--   failed_at        when it was marked failed (its updated_at before)
--   last_error       why it failed (kept)
-- psql's footer (n rows) says how many were retried.
--
-- Cost: reads only the failed items, through queue_items_failed_idx.

\set ON_ERROR_STOP on
\if :{?error_like}
\else
    \set error_like ''
\endif
\if :{?since}
\else
    \set since ''
\endif
SELECT :'error_like' = '' AND :'since' = '' AS no_filter \gset
\if :no_filter
    DO $$ BEGIN RAISE EXCEPTION 'retry_failed_matching.sql needs a filter: -v error_like=PATTERN and/or -v since=TIMESTAMP (retry_failed_all.sql retries every failed item)'; END $$;
\endif

BEGIN;

WITH picked AS (
    SELECT id, attempts, updated_at
    FROM notify.queue_items
    WHERE status = 'failed'
      AND (:'error_like' = ''
           OR COALESCE(last_error, '') ILIKE CASE WHEN strpos(:'error_like', '%') > 0 THEN :'error_like'
                                                  ELSE '%' || :'error_like' || '%' END)
      AND (:'since' = '' OR updated_at >= NULLIF(:'since', '')::timestamptz)
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

NOTIFY notify_queue;
COMMIT;
