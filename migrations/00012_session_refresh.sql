-- +goose Up
-- A browser session's roles are re-read from the issuer while it lives,
-- instead of being fixed at sign-in for the whole NOTIFY_SESSION_TTL (issue
-- 14). When the issuer gives a refresh token at sign-in (Hydra and Dex do when
-- OIDC_SCOPES has offline_access), the session keeps it, and once its roles
-- are older than NOTIFY_SESSION_REFRESH a node uses it (the refresh token
-- grant) for a new ID token, verified as at sign-in, whose roles replace the
-- session's. An issuer that refuses the grant (the user was removed, the
-- grant revoked) ends the session: the row is deleted and migration 00007's
-- trigger closes its streams everywhere.
--
-- A session whose roles change must not keep streams opened with the old
-- ones (a removed role would still receive its notifications). A trigger
-- announces every session whose user or roles an UPDATE changed, whoever
-- runs it (notifyd's refresh, an admin's UPDATE), on the channel
-- notify_session_changed; every node closes those sessions' streams, and the
-- browsers reconnect with the same cookie and the new roles. Payload and
-- chunking as for notify_session: ids separated by commas, at most 200 per
-- NOTIFY. Roles are compared as sets: a reordering changes nothing.

ALTER TABLE notify.sessions
    ADD COLUMN refresh_token         text,
    ADD COLUMN refreshed_at          timestamptz,
    ADD COLUMN refresh_claimed_until timestamptz;
UPDATE notify.sessions SET refreshed_at = created_at;
ALTER TABLE notify.sessions
    ALTER COLUMN refreshed_at SET DEFAULT now(),
    ALTER COLUMN refreshed_at SET NOT NULL;
COMMENT ON COLUMN notify.sessions.roles IS 'The user''s roles (from OIDC_ROLES_CLAIM), as of refreshed_at: read at sign-in, and again at each refresh.';
COMMENT ON COLUMN notify.sessions.refresh_token IS 'The issuer''s refresh token for this session, replaced when the issuer rotates it; null when the issuer gave none (then the roles stay those of the sign-in). Bound to notifyd''s client: useless without OIDC_CLIENT_SECRET for a confidential client.';
COMMENT ON COLUMN notify.sessions.refreshed_at IS 'When user and roles were last read from an ID token: the sign-in, then each refresh. A session with a refresh token is refreshed once this is older than NOTIFY_SESSION_REFRESH.';
COMMENT ON COLUMN notify.sessions.refresh_claimed_until IS 'A node is refreshing this session, or its last attempt failed for want of the issuer; no other attempt before this time, so a rotating refresh token is never sent twice.';

-- +goose StatementBegin
CREATE FUNCTION notify.announce_changed_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    FOR ids IN
        SELECT string_agg(id::text, ',')
        FROM (SELECT a.id, (row_number() OVER () - 1) / 200 AS chunk
              FROM after_update a JOIN before_update b USING (id)
              WHERE a.expires_at > now()
                AND (a.user_id IS DISTINCT FROM b.user_id
                     OR NOT (a.roles @> b.roles AND b.roles @> a.roles))) changed
        GROUP BY chunk
    LOOP
        PERFORM pg_notify('notify_session_changed', ids);
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.announce_changed_sessions() IS 'Announces live sessions whose user or roles an UPDATE changed on channel notify_session_changed (ids separated by commas, at most 200 per NOTIFY) so every node closes their streams, which reconnect with the new roles.';

CREATE TRIGGER sessions_announce_change
    AFTER UPDATE ON notify.sessions
    REFERENCING OLD TABLE AS before_update NEW TABLE AS after_update
    FOR EACH STATEMENT EXECUTE FUNCTION notify.announce_changed_sessions();

-- +goose Down
DROP TRIGGER sessions_announce_change ON notify.sessions;
DROP FUNCTION notify.announce_changed_sessions();
COMMENT ON COLUMN notify.sessions.roles IS 'The user''s roles when they signed in (from OIDC_ROLES_CLAIM).';
ALTER TABLE notify.sessions
    DROP COLUMN refresh_claimed_until,
    DROP COLUMN refreshed_at,
    DROP COLUMN refresh_token;
