-- user_inbox.sql: what does one user's inbox look like: which notifications,
-- newest first, are read or unread for them, since when, and which are muted?
-- And where are their watermark and unread count?
--
-- Run:
--   psql "$DATABASE_URL" -v user_id=alice -f sql/user_inbox.sql
--   psql "$DATABASE_URL" -v user_id=alice -v roles='{ADMIN,USER}' -v limit=20 -v unread_only=true -f sql/user_inbox.sql
--   psql "$DATABASE_URL" -v user_id=alice -v archived=only -f sql/user_inbox.sql
--   psql "$DATABASE_URL" -v user_id=alice -v archived=true -v hidden=true -f sql/user_inbox.sql
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
--   archived     the history's ?archived=: false (default) leaves the
--                user's archived notifications out, true lists them too,
--                only lists nothing else
--   hidden       true: list also what the history never shows: expired,
--                superseded and snoozed notifications (default false; the
--                flags and snoozed_until say which). archived still applies
--
-- The server's rules (internal/postgres/inbox.go), applied here as they are:
--   visible     published (it has a seq), and notify.visible_to: either
--               names nobody (both targets NULL: every signed-in user), or
--               names the user (target_user_id), or names one of roles
--               (target_roles); never a row that slipped past the constraints
--   read        the user's mark on it if there is one (notify.read_marks),
--               else seq <= the user's watermark (notify.read_cursors;
--               0, nothing read, when the user has no cursor)
--   seen        read, or seq <= the user's seen mark (read_cursors.seen_up_to,
--               moved when the user opens the inbox; 0 when none)
--   muted       its module is one the user muted (notify.preferences) and its
--               severity is not critical: a muted notification stays in the
--               history but is not pushed live and does not count as unread
--   expired     expires_at has passed (NOT notify.current(n))
--   superseded  a newer notification with the same collapse_key and targets
--               replaces it (notify.superseded(n))
--   snoozed     the user snoozed it until a moment still to come
--               (notify.inbox_states.snoozed_until > now())
--   archived    the user archived it (notify.inbox_states.archived_at)
-- The history lists the visible notifications that are not expired,
-- superseded, snoozed or (unless archived= says otherwise) archived; the
-- unread and unseen counts count the unread, unmuted ones among them, never
-- an archived one. This file lists what the history lists (more with
-- hidden=true), and counts as the server counts.
-- Notifications not published yet are in nobody's inbox; see
-- notifications_for_user.sql for them and for why each one reaches the user,
-- and inbox_states.sql for everything the user archived, snoozed or clicked.
--
-- Output, two result sets (psql prints each with its own header).
-- First, one summary row for the whole inbox:
--   user_id            the user
--   read_up_to         the watermark: everything with seq <= it is read,
--                      but for the marks (0 when the user has no cursor)
--   cursor_updated_at  when the watermark last moved ("mark all read");
--                      empty when the user has no cursor
--   seen_up_to         the seen mark (0 when none)
--   marked_read        the user's marks "read" (notifications read above
--                      the watermark), all of them, visible with roles or not
--   marked_unread      the user's marks "unread" (at or below it)
--   muted_modules      the modules the user muted ({} when none)
--   visible            published notifications the user may see, whether
--                      the history shows them or not
--   in_history         the visible ones the history shows by default (not
--                      expired, superseded, snoozed or archived)
--   unread             unread and not muted among in_history: the user's
--                      unread count, exact (the server's badge stops at 99)
--   unseen             the unread ones above the seen mark: the badge's
--                      unseen count, exact
--   unread_muted       unread but muted among in_history: not counted
--   archived           visible ones the user archived
--   snoozed            visible ones snoozed until later than now
--   expired            visible ones past expires_at
--   superseded         visible ones replaced by a newer one with their key
--                      (the last four overlap: an archived notification may
--                      also have expired)
-- Then one row per listed notification, newest (highest seq) first, at
-- most limit:
--   seq            its position in the stream
--   created_at     when it was inserted
--   severity       low, medium, high or critical
--   module         its module (empty when it has none)
--   message        its message on one line (runs of whitespace as one
--                  space), cut to 80 characters ("..." at the end when cut)
--   read           t or f, by the rule above
--   read_at        when it was read: the mark's time, or, when the watermark
--                  covers it, when the watermark last moved (so possibly
--                  later than the user actually read it); empty when unread
--   seen           t or f, by the rule above
--   muted          t or f, by the rule above (f for critical ones, even from
--                  a muted module)
--   archived_at    when the user archived it; empty when not archived
--   snoozed_until  the end of the user's snooze: later than now, hidden
--                  (listed with hidden=true only); at or before now, back
--                  in the history, the servers' waker not having cleared it
--                  yet; empty when not snoozed
--   expired        t or f, by the rule above (t only with hidden=true)
--   superseded     t or f, by the rule above (t only with hidden=true)
--   interaction    the id of the action button the user clicked last;
--                  empty when none
--   interacted_at  when they clicked it
--
-- Cost: the user's cursor, marks, preferences and inbox states are looked up
-- by primary key; the notifications through three indexes, combined (the
-- user's, notifications_target_user_idx; broadcasts,
-- notifications_broadcast_idx; the roles', notifications_target_roles_idx):
-- what the user may see, not the whole table; a notification with a
-- collapse_key costs one more probe of notifications_collapse_idx. The list
-- sorts them newest first. Fine in psql; the server pages with a seq cursor.

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
\if :{?archived}
\else
    \set archived false
\endif
\if :{?hidden}
\else
    \set hidden false
\endif
SELECT :'archived' NOT IN ('false', 'true', 'only') AS bad_archived \gset
\if :bad_archived
    DO $$ BEGIN RAISE EXCEPTION 'user_inbox.sql: -v archived= is false, true or only, as the history''s ?archived='; END $$;
\endif

WITH c AS (
    SELECT COALESCE(max(read_up_to), 0) AS read_up_to, max(updated_at) AS updated_at,
           COALESCE(max(seen_up_to), 0) AS seen_up_to
    FROM notify.read_cursors WHERE user_id = :'user_id'
), p AS (
    SELECT COALESCE((SELECT muted_modules FROM notify.preferences WHERE user_id = :'user_id'), '{}') AS muted_modules
), marks AS (
    SELECT count(*) FILTER (WHERE is_read) AS marked_read, count(*) FILTER (WHERE NOT is_read) AS marked_unread
    FROM notify.read_marks WHERE user_id = :'user_id'
), inbox AS (
    SELECT NOT COALESCE(m.is_read, n.seq <= c.read_up_to) AS unread,
           n.seq > c.seen_up_to AS above_seen,
           COALESCE(n.severity <> 'critical' AND n.module = ANY (p.muted_modules), false) AS muted,
           st.archived_at IS NOT NULL AS archived,
           COALESCE(st.snoozed_until > now(), false) AS snoozed,
           NOT notify.current(n) AS expired,
           notify.superseded(n) AS superseded
    FROM notify.notifications n
    CROSS JOIN c CROSS JOIN p
    LEFT JOIN notify.read_marks m ON m.user_id = :'user_id' AND m.seq = n.seq
    LEFT JOIN notify.inbox_states st ON st.user_id = :'user_id' AND st.seq = n.seq
    WHERE n.seq IS NOT NULL
      AND notify.visible_to(n, :'user_id', :'roles'::text[])
), shown AS (
    SELECT unread, above_seen, muted FROM inbox WHERE NOT (archived OR snoozed OR expired OR superseded)
)
SELECT :'user_id' AS user_id, c.read_up_to, c.updated_at AS cursor_updated_at, c.seen_up_to,
       marks.marked_read, marks.marked_unread, p.muted_modules,
       (SELECT count(*) FROM inbox) AS visible,
       (SELECT count(*) FROM shown) AS in_history,
       (SELECT count(*) FROM shown WHERE unread AND NOT muted) AS unread,
       (SELECT count(*) FROM shown WHERE unread AND NOT muted AND above_seen) AS unseen,
       (SELECT count(*) FROM shown WHERE unread AND muted) AS unread_muted,
       (SELECT count(*) FROM inbox WHERE archived) AS archived,
       (SELECT count(*) FROM inbox WHERE snoozed) AS snoozed,
       (SELECT count(*) FROM inbox WHERE expired) AS expired,
       (SELECT count(*) FROM inbox WHERE superseded) AS superseded
FROM c, p, marks;

SELECT n.seq, n.created_at, n.severity, n.module,
       CASE WHEN length(x.message) > 80 THEN left(x.message, 77) || '...' ELSE x.message END AS message,
       r.read,
       CASE WHEN m.is_read THEN m.marked_at
            WHEN m.is_read IS NULL AND n.seq <= c.read_up_to THEN c.updated_at
       END AS read_at,
       r.read OR n.seq <= c.seen_up_to AS seen,
       COALESCE(n.severity <> 'critical' AND n.module = ANY (p.muted_modules), false) AS muted,
       st.archived_at, st.snoozed_until, h.expired, h.superseded, st.interaction, st.interacted_at
FROM notify.notifications n
CROSS JOIN (SELECT COALESCE(max(read_up_to), 0) AS read_up_to, max(updated_at) AS updated_at,
                   COALESCE(max(seen_up_to), 0) AS seen_up_to
            FROM notify.read_cursors WHERE user_id = :'user_id') c
CROSS JOIN (SELECT COALESCE((SELECT muted_modules FROM notify.preferences WHERE user_id = :'user_id'), '{}') AS muted_modules) p
LEFT JOIN notify.read_marks m ON m.user_id = :'user_id' AND m.seq = n.seq
LEFT JOIN notify.inbox_states st ON st.user_id = :'user_id' AND st.seq = n.seq
CROSS JOIN LATERAL (SELECT btrim(regexp_replace(n.message, '[[:space:]]+', ' ', 'g')) AS message) x
CROSS JOIN LATERAL (SELECT COALESCE(m.is_read, n.seq <= c.read_up_to) AS read) r
CROSS JOIN LATERAL (SELECT NOT notify.current(n) AS expired, notify.superseded(n) AS superseded,
                           COALESCE(st.snoozed_until > now(), false) AS snoozed) h
WHERE n.seq IS NOT NULL
  AND notify.visible_to(n, :'user_id', :'roles'::text[])
  AND (:'hidden'::boolean OR NOT (h.expired OR h.superseded OR h.snoozed))
  AND CASE :'archived' WHEN 'true' THEN true
                       WHEN 'only' THEN st.archived_at IS NOT NULL
                       ELSE st.archived_at IS NULL END
  AND (NOT :'unread_only'::boolean OR NOT r.read)
ORDER BY n.seq DESC
LIMIT :'limit'::integer;
