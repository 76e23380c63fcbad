-- failures_by_error.sql: why did the failed items fail? One row per distinct
-- last_error, the most frequent first.
--
-- Run:
--   psql "$DATABASE_URL" -f sql/failures_by_error.sql
--
-- Parameters: none.
--
-- Output (from the view notify.queue_failures), ordered by items, then
-- last_seen, both descending:
--   last_error  the error text the items share (grouped exactly; items an
--               admin cancelled show as 'cancelled by admin')
--   items       how many failed items have it
--   first_seen  when the first of them was marked failed (updated_at)
--   last_seen   when the latest of them was
--   sample_ids  up to five queue item ids, latest first, e.g. {42,17}
--   modules     the distinct modules of their notifications
--
-- Next steps: retry_failed_item.sql (one id), retry_failed_matching.sql
-- (-v error_like=... and/or -v since=...), retry_failed_all.sql.
--
-- Cost: reads only the failed items, through queue_items_failed_idx.

\set ON_ERROR_STOP on

SELECT last_error, items, first_seen, last_seen, sample_ids, modules
FROM notify.queue_failures
ORDER BY items DESC, last_seen DESC, last_error;
