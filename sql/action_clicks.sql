-- action_clicks.sql: which action buttons do users click, per module, and
-- how often, over a period?
--
-- Run:
--   psql "$DATABASE_URL" -f sql/action_clicks.sql
--   psql "$DATABASE_URL" -v since='2024-05-01 00:00+00' -f sql/action_clicks.sql
--
-- Parameters:
--   since  a timestamptz: clicks at or after it (default: 7 days ago)
--
-- A click is POST /api/notifications/{id}/interact {"action": id}; the
-- server keeps one per user and notification, the last
-- (notify.inbox_states.interaction and interacted_at), so a user who
-- clicked two buttons of one notification, or one twice, counts once, for
-- the last button, at the last time. A notification deleted by retention
-- takes its clicks with it.
--
-- Output, one row per module and action id, modules in name order (empty,
-- no module, last), the most clicked first within each:
--   module          the notification's module (empty when it has none)
--   action          the action id (notifications.actions[].id)
--   label           its label, as the most recently clicked notification
--                   shows it (labels can differ between notifications)
--   clicks          users' last clicks on it since then
--   users           distinct users among them
--   notifications   distinct notifications among them
--   first_click_at  the earliest of those clicks
--   last_click_at   the latest
--
-- Cost: notify.inbox_states has no index on interacted_at (it is read by
-- user): this scans it, one row per user and notification acted on
-- (archived, snoozed or clicked), and reads the clicked notifications by
-- primary key.

\set ON_ERROR_STOP on
\if :{?since}
\else
    \set since ''
\endif

SELECT n.module, st.interaction AS action,
       (array_agg(a.label ORDER BY st.interacted_at DESC, st.seq DESC))[1] AS label,
       count(*) AS clicks, count(DISTINCT st.user_id) AS users, count(DISTINCT st.seq) AS notifications,
       min(st.interacted_at) AS first_click_at, max(st.interacted_at) AS last_click_at
FROM notify.inbox_states st
JOIN notify.notifications n ON n.seq = st.seq
CROSS JOIN LATERAL (
    SELECT (SELECT e ->> 'label' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.actions) = 'array' THEN n.actions END) e
            WHERE e ->> 'id' = st.interaction LIMIT 1) AS label) a
WHERE st.interaction IS NOT NULL
  AND st.interacted_at >= COALESCE(NULLIF(:'since', '')::timestamptz, now() - interval '7 days')
GROUP BY n.module, st.interaction
ORDER BY n.module NULLS LAST, clicks DESC, action;
