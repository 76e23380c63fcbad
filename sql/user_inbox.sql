-- user_inbox.sql: what does one user's inbox look like: which notifications,
-- newest first, are read or unread for them, since when, and which are muted?
-- And where are their watermark and unread count?
--
-- Run:
--   psql "$DATABASE_URL" -v user_id=alice -f sql/user_inbox.sql
--   psql "$DATABASE_URL" -v user_id=alice -v roles='{ADMIN,USER}' -v limit=20 -v unread_only=true -f sql/user_inbox.sql
--
-- Parameters:
--   user_id      the user id (the token's sub); required
--   roles        the roles the user holds, as a text[] literal such as
--                '{ADMIN,USER}' (default '{}': no roles). The database does
--                not store users' roles: take them from the identity
--                provider. (notify.sessions keeps the roles a browser
--                session signed in with, for browser users only.) Without
--                them, notifications sent to a role are left out, here and
--                in the counts
--   limit        how many notifications to list (default 50); the summary
--                counts them all
--   unread_only  true: list only the unread ones, muted included (default
--                false); the summary is the same either way
--
-- The server's rules (internal/postgres/inbox.go), applied here as they are:
--   visible  published (it has a seq), and notify.visible_to: either
--            names nobody (both targets NULL: every signed-in user), or
--            names the user (target_user_id), or names one of roles
--            (target_roles); never a row that slipped past the constraints
--   read     the user's mark on it if there is one (notify.read_marks),
--            else seq <= the user's watermark (notify.read_cursors;
--            0, nothing read, when the user has no cursor)
--   muted    its module is one the user muted (notify.preferences) and its
--            severity is not critical: a muted notification stays in the
--            history but is not pushed live and does not count as unread
-- Notifications not published yet are in nobody's inbox; see
-- notifications_for_user.sql for them and for why each one reaches the user.
--
-- Output, two result sets (psql prints each with its own header).
-- First, one summary row for the whole inbox:
--   user_id            the user
--   read_up_to         the watermark: everything with seq <= it is read,
--                      but for the marks (0 when the user has no cursor)
--   cursor_updated_at  when the watermark last moved ("mark all read");
--                      empty when the user has no cursor
--   marked_read        the user's marks "read" (notifications read above
--                      the watermark), all of them, visible with roles or not
--   marked_unread      the user's marks "unread" (at or below it)
--   muted_modules      the modules the user muted ({} when none)
--   visible            published notifications the user sees
--   unread             unread and not muted: the user's unread count, exact
--                      (the server's badge stops at 99)
--   unread_muted       unread but muted: not counted
-- Then one row per visible notification, newest (highest seq) first, at
-- most limit:
--   seq         its position in the stream
--   created_at  when it was inserted
--   severity    low, medium, high or critical
--   module      its module (empty when it has none)
--   message     its message on one line (runs of whitespace as one space),
--               cut to 80 characters ("..." at the end when cut)
--   read        t or f, by the rule above
--   read_at     when it was read: the mark's time, or, when the watermark
--               covers it, when the watermark last moved (so possibly later
--               than the user actually read it); empty when unread
--   muted       t or f, by the rule above (f for critical ones, even from a
--               muted module)
--
-- Cost: the user's cursor, marks and preferences are looked up by primary
-- key; the notifications through three indexes, combined (the user's,
-- notifications_target_user_idx; broadcasts, notifications_broadcast_idx;
-- the roles', notifications_target_roles_idx): what the user may see, not
-- the whole table. The list sorts them newest first. Fine in psql; the
-- server pages with a seq cursor.

\set ON_ERROR_STOP on
\if :{?user_id}
\else
    DO $$ BEGIN RAISE EXCEPTION 'user_inbox.sql needs the user id: psql "$DATABASE_URL" -v user_id=alice -f sql/user_inbox.sql'; END $$;
\endif
\if :{?roles}
\else
    \set roles '{}'
\endif
\if :{?limit}
\else
    \set limit 50
\endif
\if :{?unread_only}
\else
    \set unread_only false
\endif

WITH c AS (
    SELECT COALESCE(max(read_up_to), 0) AS read_up_to, max(updated_at) AS updated_at
    FROM notify.read_cursors WHERE user_id = :'user_id'
), p AS (
    SELECT COALESCE((SELECT muted_modules FROM notify.preferences WHERE user_id = :'user_id'), '{}') AS muted_modules
), marks AS (
    SELECT count(*) FILTER (WHERE is_read) AS marked_read, count(*) FILTER (WHERE NOT is_read) AS marked_unread
    FROM notify.read_marks WHERE user_id = :'user_id'
), inbox AS (
    SELECT NOT COALESCE(m.is_read, n.seq <= c.read_up_to) AS unread,
           COALESCE(n.severity <> 'critical' AND n.module = ANY (p.muted_modules), false) AS muted
    FROM notify.notifications n
    CROSS JOIN c CROSS JOIN p
    LEFT JOIN notify.read_marks m ON m.user_id = :'user_id' AND m.seq = n.seq
    WHERE n.seq IS NOT NULL
      AND notify.visible_to(n, :'user_id', :'roles'::text[])
)
SELECT :'user_id' AS user_id, c.read_up_to, c.updated_at AS cursor_updated_at,
       marks.marked_read, marks.marked_unread, p.muted_modules,
       (SELECT count(*) FROM inbox) AS visible,
       (SELECT count(*) FROM inbox WHERE unread AND NOT muted) AS unread,
       (SELECT count(*) FROM inbox WHERE unread AND muted) AS unread_muted
FROM c, p, marks;

SELECT n.seq, n.created_at, n.severity, n.module,
       CASE WHEN length(x.message) > 80 THEN left(x.message, 77) || '...' ELSE x.message END AS message,
       COALESCE(m.is_read, n.seq <= c.read_up_to) AS read,
       CASE WHEN m.is_read THEN m.marked_at
            WHEN m.is_read IS NULL AND n.seq <= c.read_up_to THEN c.updated_at
       END AS read_at,
       COALESCE(n.severity <> 'critical' AND n.module = ANY (p.muted_modules), false) AS muted
FROM notify.notifications n
CROSS JOIN (SELECT COALESCE(max(read_up_to), 0) AS read_up_to, max(updated_at) AS updated_at
            FROM notify.read_cursors WHERE user_id = :'user_id') c
CROSS JOIN (SELECT COALESCE((SELECT muted_modules FROM notify.preferences WHERE user_id = :'user_id'), '{}') AS muted_modules) p
LEFT JOIN notify.read_marks m ON m.user_id = :'user_id' AND m.seq = n.seq
CROSS JOIN LATERAL (SELECT btrim(regexp_replace(n.message, '[[:space:]]+', ' ', 'g')) AS message) x
WHERE n.seq IS NOT NULL
  AND notify.visible_to(n, :'user_id', :'roles'::text[])
  AND (NOT :'unread_only'::boolean OR NOT COALESCE(m.is_read, n.seq <= c.read_up_to))
ORDER BY n.seq DESC
LIMIT :'limit'::integer;
