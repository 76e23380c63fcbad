package signin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// Why refresh: a session's roles decide which notifications its streams
// get, and the issuer's directory changes while a session lives (12 h by
// default). When the sign-in gave a refresh token, the session keeps it, and
// once its roles are older than RefreshInterval they are read again from a
// new ID token obtained with the refresh token grant, verified and mapped as
// at sign-in. Two paths get there:
//
//   - on use: the request that authenticates with a due session (an API
//     call, a stream opening) refreshes it first, so it acts with the roles
//     of now;
//   - by sweep (RunRefresh): a stream stays open for hours without asking
//     again, so each node refreshes the due sessions of its open streams
//     every quarter interval (at most a minute apart).
//
// Roles that changed are stored, and the database announces the session
// (postgres.SessionChangedChannel); every node closes the streams opened
// with the old roles, which reconnect with the same cookie and the new. An
// issuer that refuses the grant (invalid_grant, access_denied: the user was
// removed, the grant or consent revoked) ends the session, and the delete's
// announcement closes its streams on every node. An issuer out of reach
// changes nothing: the session keeps its roles, no request fails or waits
// for it again until refreshLease has passed (the failure is logged once),
// and the session is retried when its claim lapses.
//
// One node at a time refreshes a session (postgres.ClaimRefreshes): issuers
// rotate refresh tokens, and Hydra revokes the whole grant when a used one
// comes back.

const (
	// refreshLease is how long a claimed refresh keeps other nodes away, and
	// so how soon a refresh that failed for want of the issuer is retried.
	// Well above refreshTimeout, so a claim never lapses while in flight.
	refreshLease = time.Minute
	// refreshTimeout bounds one refresh: the token request, the ID token's
	// keys, the database. A request that found its session due waits at
	// most this long; the refresh itself is not cut short when the request
	// goes away, since the issuer may already have rotated the token.
	refreshTimeout = 15 * time.Second
	// refreshRetryPause is the wait before the one retry of a refresh the
	// issuer asked to retry (askedToRetry).
	refreshRetryPause = 250 * time.Millisecond
	// refreshBatch sessions are claimed at a time by a sweep, refreshed
	// refreshParallel at a time, well within the lease.
	refreshBatch    = 32
	refreshParallel = 4
	// maxSweepEvery is the longest time between two sweeps.
	maxSweepEvery = time.Minute
)

// Streams is what the refresh sweep needs of a node's open streams
// (hub.Hub): their sessions, and closing those whose roles changed.
type Streams interface {
	SessionIDs() []string
	CloseChangedSessions(ctx context.Context, ids []string, current func(context.Context, []string) (map[string]notify.Identity, error)) (int, error)
}

// Refreshes reports whether sessions' roles are read again while they live
// (RefreshInterval is not negative).
func (f *Flow) Refreshes() bool { return f.cfg.RefreshInterval > 0 }

// RunRefresh sweeps until ctx ends: every quarter RefreshInterval (at most a
// minute apart) it refreshes the due sessions of streams' open streams, then
// closes the streams whose session's user or roles are no longer the
// database's (a change announced while this node's listener was down, or
// that raced a stream's opening). It returns at once when refreshing is off.
func (f *Flow) RunRefresh(ctx context.Context, streams Streams) {
	if !f.Refreshes() {
		return
	}
	tick := time.NewTicker(min(f.cfg.RefreshInterval/4, maxSweepEvery))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f.sweep(ctx, streams)
		}
	}
}

func (f *Flow) sweep(ctx context.Context, streams Streams) {
	ids := streams.SessionIDs()
	if len(ids) == 0 {
		return
	}
	for ctx.Err() == nil && !f.issuer.resting(time.Now()) {
		claims, err := f.sessions.ClaimRefreshes(ctx, ids, f.cfg.RefreshInterval, refreshLease, refreshBatch)
		if err != nil {
			f.cfg.Logger.WarnContext(ctx, "session refresh sweep: claim due sessions", "err", err)
			break
		}
		sem := make(chan struct{}, refreshParallel)
		var wg sync.WaitGroup
		for _, c := range claims {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				f.refresh(ctx, c)
			})
		}
		wg.Wait()
		if len(claims) < refreshBatch {
			break
		}
	}
	n, err := streams.CloseChangedSessions(ctx, nil, f.sessions.Identities)
	if err != nil {
		f.cfg.Logger.WarnContext(ctx, "session refresh sweep: compare open streams' roles", "err", err)
	} else if n > 0 {
		f.cfg.Logger.InfoContext(ctx, "closed streams opened with roles their session no longer has", "streams", n)
	}
}

// refreshOnUse refreshes the due session of a request before the request
// uses it, and returns its identity: with the new roles when the refresh
// read them, as it was when the refresh could not be done now (the issuer
// out of reach, another node on it), and an error wrapping
// notify.ErrUnauthenticated when the issuer ended the session.
func (f *Flow) refreshOnUse(ctx context.Context, id notify.Identity) (notify.Identity, bool, error) {
	if f.issuer.resting(time.Now()) {
		return id, true, nil
	}
	claims, err := f.sessions.ClaimRefreshes(ctx, []string{id.SessionID}, f.cfg.RefreshInterval, refreshLease, 1)
	if err != nil {
		f.cfg.Logger.WarnContext(ctx, "claim a session refresh; the session keeps its roles for now", "session_id", id.SessionID, "err", err)
		return id, true, nil
	}
	if len(claims) == 0 {
		return id, true, nil // another request or node is refreshing it
	}
	switch roles, out := f.refresh(ctx, claims[0]); out {
	case refreshEnded:
		return notify.Identity{}, true, fmt.Errorf("%w: the issuer no longer accepts this session; sign in again at /auth/login", notify.ErrUnauthenticated)
	case refreshDone:
		id.Roles = roles
	}
	return id, true, nil
}

// refreshOutcome is what a refresh did to its session.
type refreshOutcome int

const (
	refreshKept  refreshOutcome = iota // unchanged for now (issuer out of reach, no ID token, session gone)
	refreshDone                        // roles read again (they may be the same)
	refreshEnded                       // the issuer refused: the session is over
)

// refresh uses a claimed session's refresh token at the issuer and stores
// the outcome; it returns the session's roles when it read them.
func (f *Flow) refresh(ctx context.Context, c postgres.RefreshClaim) ([]string, refreshOutcome) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	log := f.cfg.Logger.With("session_id", c.SessionID, "user_id", c.UserID)
	ep, err := f.verifier.Endpoint(ctx)
	if err != nil {
		f.unreachable(ctx, err)
		return nil, refreshKept
	}
	oc := &oauth2.Config{ClientID: f.cfg.ClientID, ClientSecret: f.cfg.ClientSecret, Endpoint: f.authStyle(ep)}
	exchange := func() (*oauth2.Token, error) {
		return oc.TokenSource(f.verifier.ExchangeContext(ctx), &oauth2.Token{RefreshToken: c.RefreshToken}).Token()
	}
	tok, err := exchange()
	if askedToRetry(err) {
		select {
		case <-time.After(refreshRetryPause):
			tok, err = exchange()
		case <-ctx.Done():
		}
	}
	if err != nil {
		if code, ok := refused(err); ok {
			f.end(ctx, c, "the issuer refused the session's refresh token ("+code+")")
			return nil, refreshEnded
		}
		f.unreachable(ctx, err)
		return nil, refreshKept
	}
	if f.issuer.reachable() {
		log.InfoContext(ctx, "the issuer answers session refreshes again")
	}
	next := cmp.Or(tok.RefreshToken, c.RefreshToken) // not every issuer rotates
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		// Roles cannot be read again; the session is not asked about
		// again before the next interval.
		if f.issuer.firstWithoutIDToken() {
			log.WarnContext(ctx, "the issuer's refresh response has no ID token: sessions keep the roles of their sign-in")
		}
		if _, err := f.sessions.CompleteRefresh(ctx, c, c.Roles, next); err != nil && !errors.Is(err, notify.ErrNotFound) {
			log.WarnContext(ctx, "store the session's refresh", "err", err)
		}
		return nil, refreshKept
	}
	person, err := f.verifier.VerifyRefreshedIDToken(ctx, raw)
	switch {
	case errors.Is(err, notify.ErrUnauthenticated):
		f.end(ctx, c, "the refreshed ID token is refused: "+err.Error())
		return nil, refreshEnded
	case err != nil:
		// Its keys out of reach: keep the rotated token, retry later.
		if err := f.sessions.RotateRefreshToken(ctx, c, next); err != nil && !errors.Is(err, notify.ErrNotFound) {
			log.WarnContext(ctx, "keep the session's rotated refresh token", "err", err)
		}
		f.unreachable(ctx, err)
		return nil, refreshKept
	case person.UserID != c.UserID:
		f.end(ctx, c, fmt.Sprintf("the refreshed ID token names another user (%q)", person.UserID))
		return nil, refreshEnded
	}
	changed, err := f.sessions.CompleteRefresh(ctx, c, person.Roles, next)
	if errors.Is(err, notify.ErrNotFound) {
		return nil, refreshKept // ended meanwhile
	}
	if err != nil {
		log.WarnContext(ctx, "store the session's refresh; it keeps its roles until the claim lapses", "err", err)
		return nil, refreshKept
	}
	if changed {
		log.InfoContext(ctx, "session refreshed: roles changed; its streams reconnect with the new ones", "roles", person.Roles, "old_roles", c.Roles)
	} else {
		log.DebugContext(ctx, "session refreshed", "roles", person.Roles)
	}
	return person.Roles, refreshDone
}

// askedToRetry reports whether the issuer answered a token request with
// invalid_request, which Hydra (fosite) gives a refresh that raced a change
// of its grant: another refresh of the same token, or the grant revoked
// between the token's lookup and its rotation ("Failed to refresh token.
// Please retry the request."). Retried once at once, it gets its real
// answer (a new token, or invalid_grant, which ends the session) instead of
// resting for refreshLease as if the issuer were out of reach: a revoked
// session lived on a minute more.
func askedToRetry(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_request"
}

// refused reports whether a token request failed because the issuer
// refused the grant itself, rather than being out of reach or misconfigured:
// invalid_grant (expired, revoked or unknown refresh token, a user removed)
// or access_denied (Hydra's token hook denying the user).
func refused(err error) (string, bool) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "access_denied") {
		return re.ErrorCode, true
	}
	return "", false
}

// end ends a session the issuer no longer stands behind; the delete's
// trigger closes its streams on every node.
func (f *Flow) end(ctx context.Context, c postgres.RefreshClaim, why string) {
	log := f.cfg.Logger.With("session_id", c.SessionID, "user_id", c.UserID)
	if _, err := f.sessions.EndSessionByID(ctx, c.SessionID); err != nil {
		log.WarnContext(ctx, "end a session the issuer refused", "reason", why, "err", err)
		return
	}
	log.InfoContext(ctx, "session ended", "reason", why)
}

// unreachable notes a refresh that failed for want of the issuer, logging
// only the first of a run of failures.
func (f *Flow) unreachable(ctx context.Context, err error) {
	if f.issuer.failed(time.Now()) {
		f.cfg.Logger.WarnContext(ctx, "session refresh: the issuer is out of reach; sessions keep their roles and are tried again later",
			"retry_in", refreshLease, "err", err)
	}
}

// issuerState remembers how refreshes at the issuer went: while it is out
// of reach, requests do not wait on it again before refreshLease has
// passed, and its failures are logged once.
type issuerState struct {
	mu           sync.Mutex
	down         bool
	restUntil    time.Time
	noIDTokenLog bool
}

// failed records a failure at now and reports whether it starts a run.
func (s *issuerState) failed(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restUntil = now.Add(refreshLease)
	first := !s.down
	s.down = true
	return first
}

// reachable records a success and reports whether it ends a run of failures.
func (s *issuerState) reachable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.down
	s.down, s.restUntil = false, time.Time{}
	return was
}

// resting reports whether refreshes wait for now, after a recent failure.
func (s *issuerState) resting(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Before(s.restUntil)
}

// firstWithoutIDToken reports whether this is the first refresh answered
// without an ID token.
func (s *issuerState) firstWithoutIDToken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := !s.noIDTokenLog
	s.noIDTokenLog = true
	return first
}
