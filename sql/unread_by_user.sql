-- unread_by_user.sql: which users have the most unread notifications, how
-- many more are hidden by their mutes, and how long has the oldest waited?
--
-- Run:
--   psql "$DATABASE_URL" -f sql/unread_by_user.sql
--   psql "$DATABASE_URL" -v limit=100 -f sql/unread_by_user.sql
--
-- Parameters:
--   limit  how many users to show (default 20), most unread first
--
-- The users: everyone with inbox state (a row in notify.read_cursors,
-- notify.read_marks, notify.preferences or notify.inbox_states) and
-- everyone a notification names in target_user_id, published or not. A user who only ever gets
-- notifications by role or to everyone, and never read or muted anything,
-- is not in the database and not listed (user_inbox.sql answers for any
-- user id).
--
-- ROLES ARE NOT COUNTED. The database does not store users' roles (the
-- identity provider has them; notify.sessions keeps only what browser
-- sessions signed in with), so these counts take in the notifications that
-- name the user and those sent to everyone (both targets NULL), and leave
-- out every notification sent to a role, read or not. A user's real unread
-- count is this plus their unread role notifications: run user_inbox.sql
-- with -v roles= for one user.
--
-- Rows that slipped past the table's constraints are nobody's
-- (notify.undeliverable_reason, as in notify.visible_to).
-- Read, unread and muted are the server's rules (internal/postgres/inbox.go,
-- and user_inbox.sql's header): published notifications only; read when
-- the user's mark says so, else when seq <= the user's watermark (0 when
-- the user has no cursor); muted when the user muted the module and the
-- severity is not critical.
-- What the server leaves out of its counts is left out here too (see
-- user_inbox.sql's header): notifications past expires_at
-- (notify.current) and those a newer one with the same collapse_key
-- replaces (notify.superseded), for everyone; the ones the user archived
-- or snoozed until later than now (notify.inbox_states). The counts
-- (unread and muted) are exact: the notifications listed one by one are
-- checked each, and the user's archived and snoozed broadcasts among those
-- the window counts (see How) are taken off after, one row per state.
-- ONE FIGURE MAY DIFFER: oldest_unread_at (and oldest_unread_age) may be
-- the created_at of a broadcast the user archived or snoozed, so older
-- than the oldest notification the server counts for them, when that
-- broadcast is above the user's last read broadcast (and their watermark):
-- the window takes the oldest of those broadcasts per module without
-- looking at one user's states, and finding the next oldest would list
-- them. It is empty whenever unread is 0.
--
-- Output, one row per user, most unread first (then by user id), at most
-- limit rows; users with nothing unread show zeros:
--   user_id            the user
--   unread             unread notifications that name the user or everyone
--                      and are not muted: exact, not capped at 99 as the
--                      server's badge is
--   muted              unread ones the user muted (not counted in unread)
--   oldest_unread_at   created_at of the oldest of the unread (muted left
--                      out; possibly an archived or snoozed broadcast, see
--                      above); empty when none
--   oldest_unread_age  how old that is, whole seconds
--   read_up_to         the user's watermark; empty when the user has no
--                      cursor (never marked anything read: everything is
--                      unread but for the marks)
--
-- How: notifications that name a user are listed and counted one by one,
-- as are marks. Notifications to everyone are not listed per user (that
-- would be users x broadcasts rows): the ones above a user's last read mark
-- on a broadcast (or above the watermark, without one) are counted by one
-- pass of a window over the broadcasts and every user's position, per
-- module; only the ones between the watermark and that mark (usually few:
-- read one by one since the last "mark all read") are listed. Expired and
-- superseded broadcasts are left out before the window; the user's
-- archived and snoozed ones above that mark are subtracted after it. The
-- tests check the answer against a plain listing of each user's notifications
-- and against the server's own count (internal/postgres).
--
-- Cost: it reads a lot, so run it on a replica if you can, and not in a
-- loop. Listing the users scans notify.read_cursors, notify.read_marks,
-- notify.preferences, notify.inbox_states and notify.notifications; the
-- broadcasts need a second scan of notify.notifications (they have no
-- target to look up), and the notifications above each user's watermark a third, or
-- notifications_target_user_idx (the planner's choice). About 1.5 seconds
-- for 200,000 notifications (10,000 to everyone) and 16,500 users, 5,000
-- of them with a watermark (measured before the inbox states of issue 17;
-- they add a scan of notify.inbox_states, one row per user and
-- notification acted on, and a probe of notifications_collapse_idx per
-- counted notification that has a collapse_key). The planner's row
-- estimates here are far too high, so the file turns JIT compilation off for its session:
-- compiling would take longer than the query (psql prints SET for it).

\set ON_ERROR_STOP on
\if :{?limit}
\else
    \set limit 20
\endif
SET jit = off;

WITH users AS (
    SELECT user_id FROM notify.read_cursors
    UNION
    SELECT user_id FROM notify.read_marks
    UNION
    SELECT user_id FROM notify.preferences
    UNION
    SELECT user_id FROM notify.inbox_states
    UNION
    SELECT target_user_id FROM notify.notifications WHERE target_user_id IS NOT NULL
), u AS (
    SELECT users.user_id, c.read_up_to, COALESCE(c.read_up_to, 0) AS watermark,
           COALESCE(p.muted_modules, '{}') AS muted_modules
    FROM users
    LEFT JOIN notify.read_cursors c ON c.user_id = users.user_id
    LEFT JOIN notify.preferences p ON p.user_id = users.user_id
), hidden AS (
    -- What the user archived, or snoozed until later than now.
    SELECT user_id, seq FROM notify.inbox_states
    WHERE archived_at IS NOT NULL OR snoozed_until > now()
), broadcasts AS MATERIALIZED (
    -- Published, to everyone, not expired, not superseded.
    SELECT seq, module, severity = 'critical' AS critical, created_at
    FROM notify.notifications n
    WHERE seq IS NOT NULL AND target_user_id IS NULL AND target_roles IS NULL
      AND notify.undeliverable_reason(n) IS NULL AND notify.current(n) AND NOT notify.superseded(n)
), u2 AS (
    -- tail_from: the user's last read mark on a broadcast above the
    -- watermark, or the watermark. Every broadcast above it is unread.
    SELECT u.*, GREATEST(u.watermark, r.last_read) AS tail_from
    FROM u
    LEFT JOIN (SELECT m.user_id, max(m.seq) AS last_read
               FROM notify.read_marks m
               JOIN broadcasts b ON b.seq = m.seq
               WHERE m.is_read
               GROUP BY m.user_id) r ON r.user_id = u.user_id
), parts AS (
    SELECT DISTINCT module, critical FROM broadcasts
), tail AS (
    -- Broadcasts above tail_from, counted without listing them: one pass
    -- over the broadcasts and every user's tail_from, sorted together by
    -- seq, newest first, per module; a user's row sums what came before it.
    SELECT user_id, muted, n, oldest
    FROM (SELECT user_id, muted,
                 count(*) FILTER (WHERE user_id IS NULL) OVER w AS n,
                 min(created_at) FILTER (WHERE user_id IS NULL) OVER w AS oldest
          FROM (SELECT b.seq AS pos, NULL::text AS user_id, b.module, b.critical, b.created_at, NULL::boolean AS muted
                FROM broadcasts b
                UNION ALL
                SELECT u2.tail_from, u2.user_id, p.module, p.critical, NULL,
                       COALESCE(NOT p.critical AND p.module = ANY (u2.muted_modules), false)
                FROM u2 CROSS JOIN parts p) e
          WINDOW w AS (PARTITION BY module, critical ORDER BY pos DESC, user_id IS NULL ROWS UNBOUNDED PRECEDING)) x
    WHERE user_id IS NOT NULL
), tail_hidden AS (
    -- The user's archived and snoozed broadcasts above tail_from: tail
    -- counted them, the server does not.
    SELECT u2.user_id, COALESCE(NOT b.critical AND b.module = ANY (u2.muted_modules), false) AS muted,
           -1 AS n, NULL::timestamptz AS oldest
    FROM hidden h
    JOIN u2 ON u2.user_id = h.user_id
    JOIN broadcasts b ON b.seq = h.seq AND b.seq > u2.tail_from
), listed AS (
    -- Above the watermark and not marked read: named the user ...
    SELECT u.user_id, n.module, n.severity = 'critical' AS critical, n.created_at, u.muted_modules
    FROM u
    JOIN notify.notifications n ON n.target_user_id = u.user_id AND n.seq > u.watermark
    WHERE notify.undeliverable_reason(n) IS NULL AND notify.current(n) AND NOT notify.superseded(n)
      AND NOT EXISTS (SELECT FROM notify.read_marks m WHERE m.user_id = u.user_id AND m.seq = n.seq AND m.is_read)
      AND NOT EXISTS (SELECT FROM hidden h WHERE h.user_id = u.user_id AND h.seq = n.seq)
    UNION ALL
    -- ... or everyone, up to tail_from (the user read some of these one by one).
    SELECT u2.user_id, b.module, b.critical, b.created_at, u2.muted_modules
    FROM u2
    JOIN broadcasts b ON b.seq > u2.watermark AND b.seq <= u2.tail_from
    WHERE u2.tail_from > u2.watermark
      AND NOT EXISTS (SELECT FROM notify.read_marks m WHERE m.user_id = u2.user_id AND m.seq = b.seq AND m.is_read)
      AND NOT EXISTS (SELECT FROM hidden h WHERE h.user_id = u2.user_id AND h.seq = b.seq)
    UNION ALL
    -- At or below the watermark, marked unread: of those two kinds.
    SELECT u.user_id, n.module, n.severity = 'critical', n.created_at, u.muted_modules
    FROM notify.read_marks m
    JOIN u ON u.user_id = m.user_id
    JOIN notify.notifications n ON n.seq = m.seq
    WHERE NOT m.is_read AND m.seq <= u.watermark AND notify.undeliverable_reason(n) IS NULL
      AND (n.target_user_id = m.user_id OR (n.target_user_id IS NULL AND n.target_roles IS NULL))
      AND notify.current(n) AND NOT notify.superseded(n)
      AND NOT EXISTS (SELECT FROM hidden h WHERE h.user_id = m.user_id AND h.seq = m.seq)
), counts AS (
    SELECT user_id,
           sum(n) FILTER (WHERE NOT muted) AS unread,
           sum(n) FILTER (WHERE muted) AS muted,
           CASE WHEN sum(n) FILTER (WHERE NOT muted) > 0 THEN min(oldest) FILTER (WHERE NOT muted) END AS oldest
    FROM (SELECT user_id, COALESCE(NOT critical AND module = ANY (muted_modules), false) AS muted,
                 1 AS n, created_at AS oldest
          FROM listed
          UNION ALL
          SELECT user_id, muted, n, oldest FROM tail
          UNION ALL
          SELECT user_id, muted, n, oldest FROM tail_hidden) x
    GROUP BY user_id
)
SELECT u.user_id, COALESCE(k.unread, 0) AS unread, COALESCE(k.muted, 0) AS muted,
       k.oldest AS oldest_unread_at, date_trunc('second', now() - k.oldest) AS oldest_unread_age,
       u.read_up_to
FROM u
LEFT JOIN counts k ON k.user_id = u.user_id
ORDER BY COALESCE(k.unread, 0) DESC, u.user_id
LIMIT :'limit'::integer;
