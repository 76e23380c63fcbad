package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/notify"
)

// SessionChangedChannel is the NOTIFY channel on which the database
// announces sessions whose user or roles an UPDATE changed (a refresh, an
// admin's UPDATE), so every node closes the streams opened with the old
// ones; they reconnect with the same cookie and get the new. A trigger on
// notify.sessions (sessions_announce_change) sends it; the payload reads as
// SessionChannel's (SessionIDs).
const SessionChangedChannel = "notify_session_changed"

// RefreshClaim is a session one node has claimed for a refresh at the
// issuer: until the claim's lease ends no other node claims it, so a
// rotating refresh token is sent once (issuers such as Hydra revoke the
// whole grant when a used refresh token comes back).
type RefreshClaim struct {
	SessionID    string
	UserID       string
	Roles        []string
	RefreshToken string
}

// ClaimRefreshes claims, among the sessions ids, at most limit live ones
// that have a refresh token, whose roles were read more than every ago and
// that no node holds a claim on; each claim lasts lease. A claim that is
// neither completed nor rotated lapses after lease and the session is
// claimed again: that is how a refresh that failed for want of the issuer is
// retried later.
func (s *Sessions) ClaimRefreshes(ctx context.Context, ids []string, every, lease time.Duration, limit int) ([]RefreshClaim, error) {
	if len(ids) == 0 || every <= 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `UPDATE notify.sessions SET refresh_claimed_until = now() + $3::interval
		WHERE id IN (SELECT id FROM notify.sessions
			WHERE id = ANY($1::text[]::uuid[]) AND refresh_token IS NOT NULL AND expires_at > now()
			  AND refreshed_at <= now() - $2::interval
			  AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= now())
			ORDER BY refreshed_at LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING id::text, user_id, roles, refresh_token`, ids, every, lease, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("claim session refreshes: %w", interpretError(err))
	}
	claims, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RefreshClaim, error) {
		var c RefreshClaim
		err := row.Scan(&c.SessionID, &c.UserID, &c.Roles, &c.RefreshToken)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim session refreshes: %w", interpretError(err))
	}
	return claims, nil
}

// CompleteRefresh stores what a claimed refresh read: the roles of the new
// ID token, the refresh token to use next (the rotated one, or the same),
// refreshed_at now, and the claim released. It holds only while the session
// still has the claim's refresh token; otherwise (the session ended, or
// another node refreshed it after the claim lapsed) it changes nothing and
// returns notify.ErrNotFound. changed reports whether the roles differ as a
// set from the session's; then the database announces the session
// (SessionChangedChannel).
func (s *Sessions) CompleteRefresh(ctx context.Context, c RefreshClaim, roles []string, refreshToken string) (changed bool, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if roles == nil {
		roles = []string{}
	}
	err = s.pool.QueryRow(ctx, `WITH old AS (
			SELECT id, roles FROM notify.sessions WHERE id = $1::uuid AND refresh_token = $2 FOR UPDATE)
		UPDATE notify.sessions s SET roles = $3, refresh_token = $4, refreshed_at = now(), refresh_claimed_until = NULL
		FROM old WHERE s.id = old.id
		RETURNING NOT (old.roles @> s.roles AND s.roles @> old.roles)`,
		c.SessionID, c.RefreshToken, roles, refreshToken).Scan(&changed)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, notify.ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("store session refresh: %w", interpretError(err))
	}
	return changed, nil
}

// RotateRefreshToken keeps the refresh token the issuer rotated during a
// refresh whose ID token could not be checked (its keys out of reach): the
// old one is spent. Roles, refreshed_at and the claim stay, so the session
// is refreshed again when the claim lapses. notify.ErrNotFound as for
// CompleteRefresh.
func (s *Sessions) RotateRefreshToken(ctx context.Context, c RefreshClaim, refreshToken string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE notify.sessions SET refresh_token = $3
		WHERE id = $1::uuid AND refresh_token = $2`, c.SessionID, c.RefreshToken, refreshToken)
	if err != nil {
		return fmt.Errorf("keep rotated refresh token: %w", interpretError(err))
	}
	if tag.RowsAffected() == 0 {
		return notify.ErrNotFound
	}
	return nil
}

// EndSessionByID deletes the session sid, as EndSession does by cookie: the
// delete's trigger tells every node to close its streams. It reports whether
// there was such a session.
func (s *Sessions) EndSessionByID(ctx context.Context, sid string) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM notify.sessions WHERE id = $1::uuid`, sid)
	if err != nil {
		return false, fmt.Errorf("end session: %w", interpretError(err))
	}
	return tag.RowsAffected() > 0, nil
}

// Identities returns the user and roles the database holds now for those of
// ids whose session is live, by session id, in one query; a node compares
// them with its open streams' (hub.CloseChangedSessions).
func (s *Sessions) Identities(ctx context.Context, ids []string) (map[string]notify.Identity, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id::text, user_id, roles, expires_at FROM notify.sessions
		WHERE id = ANY($1::text[]::uuid[]) AND expires_at > now()`, ids)
	if err != nil {
		return nil, fmt.Errorf("read session identities: %w", interpretError(err))
	}
	out := make(map[string]notify.Identity, len(ids))
	var id notify.Identity
	_, err = pgx.ForEachRow(rows, []any{&id.SessionID, &id.UserID, &id.Roles, &id.ExpiresAt}, func() error {
		if len(id.Roles) == 0 {
			id.Roles = nil
		}
		out[id.SessionID] = id
		id = notify.Identity{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read session identities: %w", interpretError(err))
	}
	return out, nil
}
