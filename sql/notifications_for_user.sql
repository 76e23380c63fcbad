-- notifications_for_user.sql: which notifications did (or will) one user
-- get in a time range, and where is each of them now?
--
-- Run:
--   psql "$DATABASE_URL" -v user_id=alice -f sql/notifications_for_user.sql
--   psql "$DATABASE_URL" -v user_id=alice -v roles='{ADMIN,USER}' -v from='2024-05-01 00:00+00' -v to='2024-05-02 00:00+00' -f sql/notifications_for_user.sql
--
-- Parameters:
--   user_id  the user id (the token's sub); required
--   roles    the roles the user holds, as a text[] literal such as
--            '{ADMIN,USER}' (default '{}': no roles). The database does not
--            know a user's roles; take them from the identity provider
--   from     a timestamptz: notifications created at or after it
--            (default: 24 hours ago)
--   to       a timestamptz: notifications created before it
--            (default 'infinity')
--
-- Targeting, the server's own rule (the function notify.visible_to, which
-- the server's replay, history and counts call too): a notification reaches
-- the user when it names the user (target_user_id), or names any of the
-- user's roles (target_roles overlaps roles), or names nobody (both targets
-- NULL: every signed-in user); never a row that slipped past the table's
-- constraints (notify.undeliverable_reason says why; its queue item is
-- failed with that reason).
--
-- Output, one row per notification, oldest first:
--   seq           its position in the stream, the SSE event id (empty until
--                 published)
--   id            the notification id
--   matched_by    why it reaches the user: user, role NAME[,NAME] or everyone
--   status        its queue item's status: pending, processing, sent or failed
--   created_at    when it was inserted
--   published_at  when it was published (empty until then)
--   attempts      tries its queue item made
--   last_error    why the last try failed (empty if none did)
--   module        the notification's module
--   severity      low, medium, high or critical
--   message       the notification's message
--
-- Cost: there is no index on created_at, and notifications for everyone
-- have no target to look up, so this scans notify.notifications (within
-- the retention period). Fine in psql; not a query for the server.

\set ON_ERROR_STOP on
\if :{?user_id}
\else
    DO $$ BEGIN RAISE EXCEPTION 'notifications_for_user.sql needs the user id: psql "$DATABASE_URL" -v user_id=alice -f sql/notifications_for_user.sql'; END $$;
\endif
\if :{?roles}
\else
    \set roles '{}'
\endif
\if :{?from}
\else
    \set from ''
\endif
\if :{?to}
\else
    \set to 'infinity'
\endif

SELECT n.seq, n.id,
       CASE
           WHEN n.target_user_id = :'user_id' THEN 'user'
           WHEN n.target_roles && :'roles'::text[] THEN
               'role ' || array_to_string(ARRAY(SELECT r FROM unnest(n.target_roles) r
                                                WHERE r = ANY (:'roles'::text[]) ORDER BY r), ',')
           ELSE 'everyone'
       END AS matched_by,
       q.status, n.created_at, n.published_at, q.attempts, q.last_error,
       n.module, n.severity, n.message
FROM notify.notifications n
LEFT JOIN notify.queue_items q ON q.notification_id = n.id
WHERE n.created_at >= COALESCE(NULLIF(:'from', '')::timestamptz, now() - interval '1 day')
  AND n.created_at < :'to'::timestamptz
  AND notify.visible_to(n, :'user_id', :'roles'::text[])
ORDER BY n.created_at, n.id;
