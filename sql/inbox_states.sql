-- inbox_states.sql: what has one user archived, snoozed, or clicked an
-- action button of, and what does each of those notifications look like in
-- their inbox now?
--
-- Run:
--   psql "$DATABASE_URL" -v user_id=alice -f sql/inbox_states.sql
--   psql "$DATABASE_URL" -v user_id=alice -v limit=200 -f sql/inbox_states.sql
--
-- Parameters:
--   user_id  the user id (the token's sub); required
--   limit    how many notifications to list (default 50), the latest
--            changed first
--
-- The user's rows in notify.inbox_states, one per notification they acted
-- on, written by the server (POST /api/notifications/{id}/archive,
-- /unarchive, /snooze, /interact) and by the waker that ends snoozes.
-- A row whose states were all undone (unarchived, snooze ended, no click)
-- is not listed. Roles are not needed: the server writes a state only on a
-- notification the user could see, and a published notification's targets
-- never change. Read and seen state is the server's rule as in
-- user_inbox.sql's header, which lists the inbox as the user sees it.
--
-- Output, one row per notification, the latest changed (updated_at) first,
-- at most limit:
--   seq            its position in the stream
--   created_at     when it was inserted
--   module         its module (empty when it has none)
--   message        its message on one line, cut to 80 characters ("..."
--                  at the end when cut)
--   archived_at    when the user archived it; empty when not archived
--   snoozed_until  the end of the user's snooze; empty when none
--   snoozed        t: snoozed_until is later than now, the notification is
--                  hidden from the user's history and counts until then;
--                  f: not snoozed, or the snooze is over and the servers'
--                  waker (every second) has not cleared it yet, which
--                  changes nothing for the user (see unsnooze_user.sql)
--   interaction    the id of the action button the user clicked last;
--                  empty when none
--   action_label   that button's label in the notification's actions
--   interacted_at  when they clicked it
--   read           t or f, the server's rule (clicking marks read,
--                  snoozing marks unread)
--   in_history     t when the history shows it by default: not archived,
--                  not snoozed, not expired and not superseded
--   expired        t when expires_at has passed (notify.current)
--   superseded     t when a newer notification with its collapse_key and
--                  targets replaces it (notify.superseded)
--   updated_at     when the row last changed
--
-- Cost: the user's rows by primary key (notify.inbox_states is ordered by
-- user_id, seq), their notifications, marks and cursor by primary key.

\set ON_ERROR_STOP on
\if :{?user_id}
\else
    DO $$ BEGIN RAISE EXCEPTION 'inbox_states.sql needs the user id: psql "$DATABASE_URL" -v user_id=alice -f sql/inbox_states.sql'; END $$;
\endif
\if :{?limit}
\else
    \set limit 50
\endif

SELECT n.seq, n.created_at, n.module,
       CASE WHEN length(x.message) > 80 THEN left(x.message, 77) || '...' ELSE x.message END AS message,
       st.archived_at, st.snoozed_until, COALESCE(st.snoozed_until > now(), false) AS snoozed,
       st.interaction,
       (SELECT a ->> 'label' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.actions) = 'array' THEN n.actions END) a
        WHERE a ->> 'id' = st.interaction LIMIT 1) AS action_label,
       st.interacted_at,
       COALESCE(m.is_read, n.seq <= c.read_up_to) AS read,
       st.archived_at IS NULL AND NOT COALESCE(st.snoozed_until > now(), false) AND NOT h.expired AND NOT h.superseded AS in_history,
       h.expired, h.superseded, st.updated_at
FROM notify.inbox_states st
JOIN notify.notifications n ON n.seq = st.seq
CROSS JOIN (SELECT COALESCE(max(read_up_to), 0) AS read_up_to
            FROM notify.read_cursors WHERE user_id = :'user_id') c
LEFT JOIN notify.read_marks m ON m.user_id = st.user_id AND m.seq = st.seq
CROSS JOIN LATERAL (SELECT btrim(regexp_replace(n.message, '[[:space:]]+', ' ', 'g')) AS message) x
CROSS JOIN LATERAL (SELECT NOT notify.current(n) AS expired, notify.superseded(n) AS superseded) h
WHERE st.user_id = :'user_id'
  AND (st.archived_at IS NOT NULL OR st.snoozed_until IS NOT NULL OR st.interaction IS NOT NULL)
ORDER BY st.updated_at DESC, st.seq DESC
LIMIT :'limit'::integer;
