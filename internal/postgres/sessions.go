package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
)

// SessionChannel is the NOTIFY channel on which the database announces
// ended sessions, so every node closes their streams. A trigger on
// notify.sessions (sessions_announce_end) sends it for every deleted session that
// had not expired, whoever deletes it; see SessionIDs for the payload.
const SessionChannel = "notify_session"

// SessionIDs reads a SessionChannel payload: session ids separated by
// commas (up to 200 in one payload, to stay under NOTIFY's 8,000 bytes). A
// single id, what notifyd sent before the trigger existed, reads the same.
func SessionIDs(payload string) []string {
	ids := strings.Split(payload, ",")
	out := ids[:0]
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// LiveSessions returns those of ids whose session still exists and has not
// expired, in one query. A node asks it after its LISTEN connection comes
// back, for the sessions of its open streams: a session deleted while the
// connection was down was announced to no one.
func (s *Sessions) LiveSessions(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM notify.sessions
		WHERE id = ANY($1::text[]::uuid[]) AND expires_at > now()`, ids)
	if err != nil {
		return nil, fmt.Errorf("check sessions: %w", interpretError(err))
	}
	live, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check sessions: %w", interpretError(err))
	}
	return live, nil
}

// ErrTooManySignIns is StartLogin's answer when the cap on sign-ins in
// progress is reached. It wraps notify.ErrUnavailable: the server is busy,
// not the caller wrong.
var ErrTooManySignIns = fmt.Errorf("%w: too many sign-ins in progress", notify.ErrUnavailable)

// Sessions stores browser sessions and sign-ins in progress.
//
// Unauthenticated requests reach it (every /auth/login, every cookie), so
// notifyd gives it a small pool of its own with a statement_timeout, and a
// timeout per operation (WithTimeout) that also bounds waiting for one of
// that pool's connections.
type Sessions struct {
	pool    *pgxpool.Pool
	timeout time.Duration // 0: none
}

// NewSessions returns the session store over pool.
func NewSessions(pool *pgxpool.Pool) *Sessions { return &Sessions{pool: pool} }

// WithTimeout returns a copy of s whose operations each give up after d,
// acquiring a connection included; the error then wraps
// notify.ErrUnavailable.
func (s *Sessions) WithTimeout(d time.Duration) *Sessions {
	c := *s
	c.timeout = d
	return &c
}

func (s *Sessions) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// LoginAttempt is a sign-in between /auth/login and /auth/callback.
type LoginAttempt struct {
	State, Nonce, CodeVerifier, RedirectPath string
}

// StartLogin records a sign-in that must finish within ttl, unless
// maxPending sign-ins are already in progress (not expired): then it records
// nothing and returns ErrTooManySignIns. The count is bounded by maxPending
// and read in the same statement; concurrent starts may overshoot the cap by
// at most the pool's size.
func (s *Sessions) StartLogin(ctx context.Context, a LoginAttempt, ttl time.Duration, maxPending int) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `INSERT INTO notify.login_attempts (state, nonce, code_verifier, redirect_path, expires_at)
		SELECT $1, $2, $3, $4, now() + $5::interval
		WHERE (SELECT count(*) FROM (SELECT FROM notify.login_attempts WHERE expires_at > now() LIMIT $6) pending) < $6`,
		a.State, a.Nonce, a.CodeVerifier, a.RedirectPath, ttl, max(maxPending, 1))
	if err != nil {
		return fmt.Errorf("record sign-in: %w", interpretError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record sign-in: %w", ErrTooManySignIns)
	}
	return nil
}

// TakeLogin removes and returns the sign-in with state; an unknown, used or
// expired state is notify.ErrNotFound.
func (s *Sessions) TakeLogin(ctx context.Context, state string) (LoginAttempt, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
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

// CreateSession stores a session for id, found later by tokenHash, with
// the issuer's refresh token when it gave one ("" when not: the session's
// roles then stay those of the sign-in).
func (s *Sessions) CreateSession(ctx context.Context, tokenHash []byte, id notify.Identity, expires time.Time, refreshToken string) (string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	roles := id.Roles
	if roles == nil {
		roles = []string{}
	}
	var sid string
	err := s.pool.QueryRow(ctx, `INSERT INTO notify.sessions (token_hash, user_id, roles, expires_at, refresh_token)
		VALUES ($1, $2, $3, $4, NULLIF($5, '')) RETURNING id`, tokenHash, id.UserID, roles, expires, refreshToken).Scan(&sid)
	if err != nil {
		return "", fmt.Errorf("create session: %w", interpretError(err))
	}
	return sid, nil
}

// Session returns the identity of the live session with tokenHash;
// notify.ErrNotFound when there is none (unknown, ended or expired). due
// reports that the session should be refreshed (RefreshClaim): it has a
// refresh token, its roles were read more than refreshEvery ago, and no node
// is refreshing it; never with refreshEvery <= 0.
func (s *Sessions) Session(ctx context.Context, tokenHash []byte, refreshEvery time.Duration) (id notify.Identity, due bool, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err = s.pool.QueryRow(ctx, `SELECT id, user_id, roles, expires_at,
			$2::interval > '0' AND refresh_token IS NOT NULL AND refreshed_at <= now() - $2::interval
			AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= now())
		FROM notify.sessions
		WHERE token_hash = $1 AND expires_at > now()`, tokenHash, refreshEvery).Scan(&id.SessionID, &id.UserID, &id.Roles, &id.ExpiresAt, &due)
	if errors.Is(err, pgx.ErrNoRows) {
		return notify.Identity{}, false, notify.ErrNotFound
	}
	if err != nil {
		return notify.Identity{}, false, fmt.Errorf("look up session: %w", interpretError(err))
	}
	if len(id.Roles) == 0 {
		id.Roles = nil
	}
	return id, due, nil
}

// EndSession deletes the session with tokenHash; the delete's trigger tells
// every node (SessionChannel), so they close its streams. It returns the
// session id, or "" if there was no such session.
func (s *Sessions) EndSession(ctx context.Context, tokenHash []byte) (string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var sid string
	err := s.pool.QueryRow(ctx, `DELETE FROM notify.sessions WHERE token_hash = $1 RETURNING id::text`, tokenHash).Scan(&sid)
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
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `WITH a AS (DELETE FROM notify.login_attempts WHERE expires_at < now())
		DELETE FROM notify.sessions WHERE expires_at < now()`)
	if err != nil {
		return 0, fmt.Errorf("purge expired sessions: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}
