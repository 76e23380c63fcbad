-- cancel_pending_matching.sql: stop the pending queue items that match a
-- filter from ever being delivered (a flood from one module, a batch sent
-- by mistake).
--
-- Run:
--   psql "$DATABASE_URL" -v module=billing -f sql/cancel_pending_matching.sql
--   psql "$DATABASE_URL" -v module=billing -v since='2024-05-01 09:00+00' -v until='2024-05-01 09:30+00' -f sql/cancel_pending_matching.sql
--   psql "$DATABASE_URL" -v error_like='payload too large' -f sql/cancel_pending_matching.sql
--
-- Parameters (at least one; given several, an item must match all):
--   module      the notification's module, exactly
--   since       a timestamptz: items created at or after it
--   until       a timestamptz: items created before it
--   error_like  a case-insensitive LIKE pattern on last_error (pending items
--               waiting to retry a failed attempt); without a % it matches
--               anywhere in the error
-- An empty filter is refused, so nothing is cancelled by accident.
--
-- What it does, to each matching pending item: status failed, last_error
-- 'cancelled by admin', updated_at now(); attempts and next_attempt_at stay
-- as they were. Processing items are left alone: a worker holds them and
-- may be publishing them right now (run again once their lease is over).
--
-- Why failed and not deleted: failed is final for the workers (they never
-- claim it), yet the notifications and their items stay on record, so the
-- cancellation shows in failures_by_error.sql and queue_counts.sql under its
-- own error and can be undone with
-- retry_failed_matching.sql -v error_like='cancelled by admin'. Deleting
-- queue items would leave notifications that are neither published nor
-- failed, which the server promises never happens, and deleting the
-- notifications would erase what was meant to be sent to whom.
--
-- Output: one row per cancelled item, oldest first:
--   id               queue item id
--   notification_id  the notification it would have delivered
--   created_at       when the item was created
--   attempts         tries it had made
--   module           the notification's module
--   message          the notification's message
--   previous_error   its last_error before (empty unless an attempt failed)
-- psql's footer (n rows) says how many were cancelled.
--
-- Cost: reads the pending items only, through queue_items_claim_idx
-- (partial on status = 'pending'), and their notifications by primary key.

\set ON_ERROR_STOP on
\if :{?module}
\else
    \set module ''
\endif
\if :{?since}
\else
    \set since ''
\endif
\if :{?until}
\else
    \set until ''
\endif
\if :{?error_like}
\else
    \set error_like ''
\endif
SELECT :'module' = '' AND :'since' = '' AND :'until' = '' AND :'error_like' = '' AS no_filter \gset
\if :no_filter
    DO $$ BEGIN RAISE EXCEPTION 'cancel_pending_matching.sql needs a filter: -v module=NAME, -v since=TIMESTAMP, -v until=TIMESTAMP and/or -v error_like=PATTERN'; END $$;
\endif

WITH picked AS (
    SELECT q.id, q.last_error, n.module, n.message
    FROM notify.queue_items q
    JOIN notify.notifications n ON n.id = q.notification_id
    WHERE q.status = 'pending'
      AND (:'module' = '' OR n.module = :'module')
      AND (:'since' = '' OR q.created_at >= NULLIF(:'since', '')::timestamptz)
      AND (:'until' = '' OR q.created_at < NULLIF(:'until', '')::timestamptz)
      AND (:'error_like' = ''
           OR COALESCE(q.last_error, '') ILIKE CASE WHEN strpos(:'error_like', '%') > 0 THEN :'error_like'
                                                    ELSE '%' || :'error_like' || '%' END)
    FOR UPDATE OF q
), cancelled AS (
    UPDATE notify.queue_items q
    SET status = 'failed', last_error = 'cancelled by admin', updated_at = now()
    FROM picked p
    WHERE q.id = p.id
    RETURNING q.id, q.notification_id, q.created_at, q.attempts, p.module, p.message, p.last_error AS previous_error
)
SELECT id, notification_id, created_at, attempts, module, message, previous_error
FROM cancelled
ORDER BY created_at, id;
