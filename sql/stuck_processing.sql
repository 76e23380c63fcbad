-- stuck_processing.sql: which items has a worker held in processing for
-- longer than the lease, who holds them, and for how long?
--
-- Run:
--   psql "$DATABASE_URL" -f sql/stuck_processing.sql
--   psql "$DATABASE_URL" -v lease='2 minutes' -f sql/stuck_processing.sql
--
-- Parameters:
--   lease  a PostgreSQL interval (default '30 seconds', the worker's default
--          lease); give the lease your workers run with
--
-- Output, one row per item held longer than lease, longest held first:
--   id               queue item id (queue_items.id)
--   notification_id  the notification it delivers
--   locked_by        the worker holding it (host/pid/worker)
--   locked_at        when that worker claimed it
--   held             how long it has been held (now() - locked_at, whole
--                    seconds)
--   attempts         tries so far, this claim included
--   max_attempts     tries before it is failed
--   created_at       when the item was created
--
-- A running worker takes such items back by itself (pending again, or failed
-- once their attempts are used up) within half a lease. Items that stay here
-- much longer than the lease mean no worker is running: start one. Nothing
-- needs repairing by hand.
--
-- Cost: an index scan of queue_items_processing_idx (partial on
-- status = 'processing').

\set ON_ERROR_STOP on
\if :{?lease}
\else
    \set lease '30 seconds'
\endif

SELECT id, notification_id, locked_by, locked_at,
       date_trunc('second', now() - locked_at) AS held,
       attempts, max_attempts, created_at
FROM notify.queue_items
WHERE status = 'processing' AND locked_at < now() - :'lease'::interval
ORDER BY locked_at, id;
