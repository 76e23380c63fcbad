-- throughput_per_minute.sql: minute by minute over the last hour, how many
-- notifications were created, published and failed, and how long did
-- publishing take?
--
-- Run:
--   psql "$DATABASE_URL" -f sql/throughput_per_minute.sql
--   psql "$DATABASE_URL" -v minutes=180 -v until='2024-05-01 10:00+00' -f sql/throughput_per_minute.sql
--
-- Parameters:
--   minutes  how many minutes to show (default 60)
--   until    a timestamptz: the end of the window (default now); its minute
--            is the last row, counted up to until itself
--
-- Output, one row per minute, oldest first; minutes without activity show
-- zeros (and empty latencies):
--   minute     the start of the minute
--   created    notifications inserted in that minute (created_at)
--   published  notifications published in that minute (published_at)
--   failed     queue items that gave up in that minute: status failed with
--              updated_at in it (admin cancellations included; failed
--              attempts that will be retried are not counted)
--   p50_ms     median publish latency (published_at - created_at) of the
--              notifications published in that minute, in milliseconds
--   p99_ms     its 99th percentile, in milliseconds
--
-- Cost: published and failed are read through notifications_published_at_idx
-- and queue_items_failed_idx. created has no index on created_at to use: it
-- scans notify.notifications (within the retention period).

\set ON_ERROR_STOP on
\if :{?minutes}
\else
    \set minutes 60
\endif
\if :{?until}
\else
    \set until 'now'
\endif

WITH bounds AS (
    SELECT :'until'::timestamptz AS until,
           date_trunc('minute', :'until'::timestamptz) - (:'minutes'::integer - 1) * interval '1 minute' AS start
), minutes AS (
    SELECT generate_series(w.start, date_trunc('minute', w.until), interval '1 minute') AS minute
    FROM bounds w
), created AS (
    SELECT date_trunc('minute', n.created_at) AS minute, count(*) AS n
    FROM notify.notifications n, bounds w
    WHERE n.created_at >= w.start AND n.created_at <= w.until
    GROUP BY 1
), published AS (
    SELECT date_trunc('minute', n.published_at) AS minute, count(*) AS n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY n.published_at - n.created_at) AS p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY n.published_at - n.created_at) AS p99
    FROM notify.notifications n, bounds w
    WHERE n.published_at >= w.start AND n.published_at <= w.until
    GROUP BY 1
), failed AS (
    SELECT date_trunc('minute', q.updated_at) AS minute, count(*) AS n
    FROM notify.queue_items q, bounds w
    WHERE q.status = 'failed' AND q.updated_at >= w.start AND q.updated_at <= w.until
    GROUP BY 1
)
SELECT m.minute,
       COALESCE(c.n, 0) AS created,
       COALESCE(p.n, 0) AS published,
       COALESCE(f.n, 0) AS failed,
       round(extract(epoch FROM p.p50) * 1000, 1) AS p50_ms,
       round(extract(epoch FROM p.p99) * 1000, 1) AS p99_ms
FROM minutes m
LEFT JOIN created c ON c.minute = m.minute
LEFT JOIN published p ON p.minute = m.minute
LEFT JOIN failed f ON f.minute = m.minute
ORDER BY m.minute;
