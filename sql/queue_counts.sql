-- queue_counts.sql: how many queue items are in each status, and how old is
-- the oldest one of each?
--
-- Run:
--   psql "$DATABASE_URL" -f sql/queue_counts.sql
--
-- Parameters: none.
--
-- Output, one row per status, always all four, in the order
-- pending, processing, failed, sent (from the view notify.queue_state):
--   status             pending, processing, failed or sent
--   items              how many items have that status
--   oldest_created_at  created_at of the oldest of them (empty when none)
--   oldest_age         how old that is, whole seconds
--   due                pending: how many a worker may claim right now
--                      (next_attempt_at <= now()); empty for the others
--   next_due           pending: the earliest next_attempt_at (in the past
--                      when items are overdue); empty for the others
--
-- What to look at: a growing pending count with due > 0 and an old next_due
-- means the workers are not keeping up or not running (see due_pending.sql);
-- processing items older than the lease are stuck (stuck_processing.sql);
-- failed items: failures_by_error.sql.
--
-- Cost: pending, processing and failed are counted through their partial
-- indexes. The sent row needs a full scan of notify.queue_items (there is no
-- index on sent items, nor should there be: they are most of the table); on
-- a very large table expect it to take seconds.

\set ON_ERROR_STOP on

SELECT status, items, oldest_created_at, oldest_age, due, next_due
FROM notify.queue_state
ORDER BY array_position(ARRAY['pending', 'processing', 'failed', 'sent'], status);
