-- cancel_pending_item.sql: stop one pending queue item from ever being
-- delivered (a notification sent by mistake, before a worker publishes it).
--
-- Run:
--   psql "$DATABASE_URL" -v id=42 -f sql/cancel_pending_item.sql
--
-- Parameters:
--   id  the queue item id (queue_items.id, as in due_pending.sql); required
--
-- What it does: if item id is pending, it becomes failed with last_error
-- 'cancelled by admin' and updated_at now(); attempts and next_attempt_at
-- stay as they were. Items in any other status are left alone: a processing
-- item is in a worker's hands and may be being published right now (wait
-- for it or for its lease); a sent one has been delivered already.
--
-- Why failed and not deleted: failed is final for the workers (they never
-- claim it), yet the notification and its item stay on record, so the
-- cancellation shows in failures_by_error.sql and queue_counts.sql under its
-- own error and can be undone with retry_failed_item.sql. Deleting the
-- queue item would leave a notification that is neither published nor
-- failed, which the server promises never happens, and deleting the
-- notification would erase what was meant to be sent to whom.
--
-- Output: the cancelled item (none, and a warning on stderr, when item id
-- is not pending):
--   id               queue item id
--   notification_id  the notification it would have delivered
--   created_at       when the item was created
--   attempts         tries it had made
--   module           the notification's module
--   message          the notification's message
--   previous_error   its last_error before (empty unless an attempt failed)

\set ON_ERROR_STOP on
\if :{?id}
\else
    DO $$ BEGIN RAISE EXCEPTION 'cancel_pending_item.sql needs the queue item id: psql "$DATABASE_URL" -v id=42 -f sql/cancel_pending_item.sql'; END $$;
\endif

WITH picked AS (
    SELECT id, last_error
    FROM notify.queue_items
    WHERE id = :'id'::bigint AND status = 'pending'
    FOR UPDATE
), cancelled AS (
    UPDATE notify.queue_items q
    SET status = 'failed', last_error = 'cancelled by admin', updated_at = now()
    FROM picked p
    WHERE q.id = p.id
    RETURNING q.id, q.notification_id, q.created_at, q.attempts, p.last_error AS previous_error
)
SELECT c.id, c.notification_id, c.created_at, c.attempts, n.module, n.message, c.previous_error
FROM cancelled c
JOIN notify.notifications n ON n.id = c.notification_id;

SELECT :ROW_COUNT = 0 AS cancelled_nothing \gset
\if :cancelled_nothing
    \warn 'cancel_pending_item.sql: no pending queue item has id' :id
\endif
