-- +goose Up
-- Browser sign-in: sessions live in the database so that logout and expiry
-- take effect on every node at once.

CREATE TABLE notify.sessions (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   bytea       NOT NULL UNIQUE,
    user_id      text        NOT NULL,
    roles        text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CONSTRAINT sessions_expiry_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE notify.sessions IS 'Signed-in browser sessions. The cookie holds a random secret; only its SHA-256 is stored. DELETE a row to sign that browser out everywhere.';
COMMENT ON COLUMN notify.sessions.id IS 'Public id of the session (logs, the logout broadcast).';
COMMENT ON COLUMN notify.sessions.token_hash IS 'SHA-256 of the secret in the session cookie.';
COMMENT ON COLUMN notify.sessions.user_id IS 'The signed-in user (the ID token''s sub).';
COMMENT ON COLUMN notify.sessions.roles IS 'The user''s roles when they signed in (from OIDC_ROLES_CLAIM).';
COMMENT ON COLUMN notify.sessions.created_at IS 'When the user signed in.';
COMMENT ON COLUMN notify.sessions.expires_at IS 'The session ends at this time; its streams are closed then.';
CREATE INDEX sessions_user_idx ON notify.sessions (user_id);
CREATE INDEX sessions_expires_idx ON notify.sessions (expires_at);

CREATE TABLE notify.login_attempts (
    state         text        PRIMARY KEY,
    nonce         text        NOT NULL,
    code_verifier text        NOT NULL,
    redirect_path text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
COMMENT ON TABLE notify.login_attempts IS 'Sign-ins in progress (between /auth/login and /auth/callback); each is used once.';
COMMENT ON COLUMN notify.login_attempts.state IS 'The OAuth2 state sent to the issuer, also in the browser''s login cookie.';
COMMENT ON COLUMN notify.login_attempts.nonce IS 'The OpenID Connect nonce the ID token must carry.';
COMMENT ON COLUMN notify.login_attempts.code_verifier IS 'The PKCE code verifier for the code exchange.';
COMMENT ON COLUMN notify.login_attempts.redirect_path IS 'The local path to return to after sign-in.';
COMMENT ON COLUMN notify.login_attempts.created_at IS 'When the sign-in started.';
COMMENT ON COLUMN notify.login_attempts.expires_at IS 'The sign-in must finish before this time.';
CREATE INDEX login_attempts_expires_idx ON notify.login_attempts (expires_at);

-- +goose Down
DROP TABLE notify.login_attempts;
DROP TABLE notify.sessions;
