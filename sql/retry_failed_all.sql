-- retry_failed_all.sql: put every failed queue item back in line, now (after
-- an outage is fixed). Items an admin cancelled are failed too: they come
-- back as well; use retry_failed_matching.sql to be choosier.
--
-- Run:
--   psql "$DATABASE_URL" -f sql/retry_failed_all.sql
--
-- Parameters: none.
--
-- What it does, in one transaction, to every failed item: status pending,
-- attempts 0 (a fresh set of max_attempts tries), next_attempt_at now(),
-- updated_at now(); then NOTIFY notify_queue wakes an idle worker at once.
-- last_error is kept: the items still show why they had failed while they
-- wait, and the worker overwrites it if the next attempt fails and clears it
-- when the item is sent (the same rule as `notifyd retry`).
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

BEGIN;

WITH picked AS (
    SELECT id, attempts, updated_at
    FROM notify.queue_items
    WHERE status = 'failed'
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
