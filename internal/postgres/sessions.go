package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
)

// SessionChannel is the NOTIFY channel that carries the id of a session that
// ended, so every node closes its streams.
const SessionChannel = "notify_session"

// Sessions stores browser sessions and sign-ins in progress.
type Sessions struct {
	pool *pgxpool.Pool
}

// NewSessions returns the session store over pool.
func NewSessions(pool *pgxpool.Pool) *Sessions { return &Sessions{pool: pool} }

// LoginAttempt is a sign-in between /auth/login and /auth/callback.
type LoginAttempt struct {
	State, Nonce, CodeVerifier, RedirectPath string
}

// StartLogin records a sign-in that must finish within ttl.
func (s *Sessions) StartLogin(ctx context.Context, a LoginAttempt, ttl time.Duration) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO notify.login_attempts (state, nonce, code_verifier, redirect_path, expires_at)
		VALUES ($1, $2, $3, $4, now() + $5::interval)`, a.State, a.Nonce, a.CodeVerifier, a.RedirectPath, ttl)
	if err != nil {
		return fmt.Errorf("record sign-in: %w", interpretError(err))
	}
	return nil
}

// TakeLogin removes and returns the sign-in with state; an unknown, used or
// expired state is notify.ErrNotFound.
func (s *Sessions) TakeLogin(ctx context.Context, state string) (LoginAttempt, error) {
	var a LoginAttempt
	var fresh bool
	err := s.pool.QueryRow(ctx, `DELETE FROM notify.login_attempts WHERE state = $1
		RETURNING state, nonce, code_verifier, redirect_path, expires_at > now()`, state).
		Scan(&a.State, &a.Nonce, &a.CodeVerifier, &a.RedirectPath, &fresh)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !fresh) {
		return LoginAttempt{}, notify.ErrNotFound
	}
	if err != nil {
		return LoginAttempt{}, fmt.Errorf("take sign-in: %w", interpretError(err))
	}
	return a, nil
}

// CreateSession stores a session for id, found later by tokenHash.
func (s *Sessions) CreateSession(ctx context.Context, tokenHash []byte, id notify.Identity, expires time.Time) (string, error) {
	roles := id.Roles
	if roles == nil {
		roles = []string{}
	}
	var sid string
	err := s.pool.QueryRow(ctx, `INSERT INTO notify.sessions (token_hash, user_id, roles, expires_at)
		VALUES ($1, $2, $3, $4) RETURNING id`, tokenHash, id.UserID, roles, expires).Scan(&sid)
	if err != nil {
		return "", fmt.Errorf("create session: %w", interpretError(err))
	}
	return sid, nil
}

// Session returns the identity of the live session with tokenHash;
// notify.ErrNotFound when there is none (unknown, ended or expired).
func (s *Sessions) Session(ctx context.Context, tokenHash []byte) (notify.Identity, error) {
	var id notify.Identity
	err := s.pool.QueryRow(ctx, `SELECT id, user_id, roles, expires_at FROM notify.sessions
		WHERE token_hash = $1 AND expires_at > now()`, tokenHash).Scan(&id.SessionID, &id.UserID, &id.Roles, &id.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return notify.Identity{}, notify.ErrNotFound
	}
	if err != nil {
		return notify.Identity{}, fmt.Errorf("look up session: %w", interpretError(err))
	}
	if len(id.Roles) == 0 {
		id.Roles = nil
	}
	return id, nil
}

// EndSession deletes the session with tokenHash and tells every node (NOTIFY
// on SessionChannel) so they close its streams. It returns the session id, or
// "" if there was no such session.
func (s *Sessions) EndSession(ctx context.Context, tokenHash []byte) (string, error) {
	var sid string
	err := s.pool.QueryRow(ctx, `WITH gone AS (DELETE FROM notify.sessions WHERE token_hash = $1 RETURNING id)
		SELECT id::text, pg_notify($2, id::text) FROM gone`, tokenHash, SessionChannel).Scan(&sid, new(string))
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("end session: %w", interpretError(err))
	}
	return sid, nil
}

// PurgeExpired deletes ended sessions and abandoned sign-ins.
func (s *Sessions) PurgeExpired(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `WITH a AS (DELETE FROM notify.login_attempts WHERE expires_at < now())
		DELETE FROM notify.sessions WHERE expires_at < now()`)
	if err != nil {
		return 0, fmt.Errorf("purge expired sessions: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}
