-- unsnooze_user.sql: bring back, now, the notifications one user snoozed
-- (all of them, or one), as if their snoozes had run out.
--
-- Run:
--   psql "$DATABASE_URL" -v user_id=alice -f sql/unsnooze_user.sql
--   psql "$DATABASE_URL" -v user_id=alice -v seq=1042 -f sql/unsnooze_user.sql
--
-- Parameters:
--   user_id  the user id (the token's sub); required
--   seq      only this notification (its seq, as inbox_states.sql and
--            user_inbox.sql list it); default: every snooze of the user
--
-- What it does, in one transaction: each of the user's snoozes that has not
-- run out (notify.inbox_states.snoozed_until later than now()) ends now:
-- snoozed_until = now(), updated_at = now(). That is all a snooze running
-- out is, so everything else follows as it would have at the snooze's end:
-- from the commit on, the history and the unread counts show the
-- notification again (unread, as snoozing marked it, unless read since);
-- and the servers' waker (every node, every second) clears snoozed_until
-- and pushes the notification to the user's open streams, so their
-- browsers show it again within about a second. No server needs to be told.
-- A snooze that already ran out, or a notification that is not snoozed, is
-- left alone. Roles are not needed (a state is only ever written on a
-- notification the user could see).
--
-- Output: one row per ended snooze, by seq (none, and a warning on stderr,
-- when the user had no snooze running):
--   seq                   the notification's position in the stream
--   message               its message on one line, cut to 80 characters
--   snoozed_until_before  when the snooze would have ended
--   expired               t when it has expired meanwhile: it stays out of
--                         the history and is not pushed (notify.current)

\set ON_ERROR_STOP on
\if :{?user_id}
\else
    DO $$ BEGIN RAISE EXCEPTION 'unsnooze_user.sql needs the user id: psql "$DATABASE_URL" -v user_id=alice -f sql/unsnooze_user.sql'; END $$;
\endif
\if :{?seq}
\else
    \set seq ''
\endif

BEGIN;

WITH picked AS (
    SELECT user_id, seq, snoozed_until
    FROM notify.inbox_states
    WHERE user_id = :'user_id' AND snoozed_until > now()
      AND (:'seq' = '' OR seq = NULLIF(:'seq', '')::bigint)
    FOR UPDATE
), ended AS (
    UPDATE notify.inbox_states s
    SET snoozed_until = now(), updated_at = now()
    FROM picked p
    WHERE s.user_id = p.user_id AND s.seq = p.seq
    RETURNING s.seq, p.snoozed_until AS snoozed_until_before
)
SELECT e.seq,
       CASE WHEN length(x.message) > 80 THEN left(x.message, 77) || '...' ELSE x.message END AS message,
       e.snoozed_until_before, NOT notify.current(n) AS expired
FROM ended e
JOIN notify.notifications n ON n.seq = e.seq
CROSS JOIN LATERAL (SELECT btrim(regexp_replace(n.message, '[[:space:]]+', ' ', 'g')) AS message) x
ORDER BY e.seq;

SELECT :ROW_COUNT = 0 AS ended_nothing \gset
\if :ended_nothing
    \warn 'unsnooze_user.sql: no snooze running for user' :user_id
\endif

COMMIT;
