package signin

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// oauthConfig builds the client configuration for r's sign-in, with the
// issuer's endpoints discovered (or cached) under r's context.
func (f *Flow) oauthConfig(r *http.Request) (*oauth2.Config, error) {
	redirect, ok := f.redirectURL(r)
	if !ok {
		return nil, ErrNotConfigured
	}
	ep, err := f.verifier.Endpoint(r.Context())
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{ClientID: f.cfg.ClientID, ClientSecret: f.cfg.ClientSecret, Endpoint: f.authStyle(ep),
		RedirectURL: redirect, Scopes: f.cfg.Scopes}, nil
}

// authStyle adjusts how the client authenticates at the token endpoint: a
// public client (no OIDC_CLIENT_SECRET) names itself in the form, with
// nothing to put in an Authorization header.
func (f *Flow) authStyle(ep oauth2.Endpoint) oauth2.Endpoint {
	if f.cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return ep
}

// Login starts a sign-in: GET /auth/login?redirect=<local path>.
func (f *Flow) Login(w http.ResponseWriter, r *http.Request) error {
	if !f.EnabledFor(r) {
		return ErrNotConfigured
	}
	target := f.cfg.DefaultRedirect
	if raw := r.URL.Query().Get("redirect"); raw != "" {
		path, ok := LocalPath(raw)
		if !ok {
			return fmt.Errorf("%w: redirect must be a path on this server (like /test-notifications)", notify.ErrInvalid)
		}
		target = path
	}
	oc, err := f.oauthConfig(r)
	if err != nil {
		return err
	}
	a := postgres.LoginAttempt{State: randomToken(stateBytes), Nonce: randomToken(24), CodeVerifier: oauth2.GenerateVerifier(), RedirectPath: target}
	if err := f.sessions.StartLogin(r.Context(), a, f.cfg.LoginTTL, f.cfg.MaxPendingSignIns); err != nil {
		return err
	}
	f.setCookie(w, r, loginCookie, a.State, "/auth", int(f.cfg.LoginTTL.Seconds()))
	http.Redirect(w, r, oc.AuthCodeURL(a.State, oauth2.S256ChallengeOption(a.CodeVerifier), oauth2.SetAuthURLParam("nonce", a.Nonce)), http.StatusFound)
	return nil
}

// Callback ends a sign-in: GET /auth/callback?code=…&state=…. The state must
// match this browser's login cookie and a sign-in in progress (once); the
// ID token must verify and carry that sign-in's nonce.
func (f *Flow) Callback(w http.ResponseWriter, r *http.Request) error {
	if !f.EnabledFor(r) {
		return ErrNotConfigured
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return fmt.Errorf("%w: the issuer refused the sign-in: %s %s", notify.ErrUnauthenticated, truncate(e, 64), truncate(q.Get("error_description"), 200))
	}
	state, code := q.Get("state"), q.Get("code")
	cookie, err := r.Cookie(loginCookie)
	if err != nil || !wellFormed(state, stateBytes) || code == "" || cookie.Value != state {
		return fmt.Errorf("%w: sign-in state does not match this browser; start again at /auth/login", notify.ErrUnauthenticated)
	}
	f.setCookie(w, r, loginCookie, "", "/auth", -1)
	attempt, err := f.sessions.TakeLogin(r.Context(), state)
	if errors.Is(err, notify.ErrNotFound) {
		return fmt.Errorf("%w: sign-in expired or already used; start again at /auth/login", notify.ErrUnauthenticated)
	}
	if err != nil {
		return err
	}
	oc, err := f.oauthConfig(r)
	if err != nil {
		return err
	}
	tok, err := oc.Exchange(f.verifier.ExchangeContext(r.Context()), code, oauth2.VerifierOption(attempt.CodeVerifier))
	if err != nil {
		f.cfg.Logger.WarnContext(r.Context(), "sign-in code exchange failed", "err", err)
		return fmt.Errorf("%w: the issuer did not accept the sign-in code", notify.ErrUnauthenticated)
	}
	raw, _ := tok.Extra("id_token").(string)
	person, err := f.verifier.VerifyIDToken(r.Context(), raw, attempt.Nonce)
	if err != nil {
		return err
	}
	id := person.Identity
	secret := randomToken(sessionBytes)
	expires := time.Now().Add(f.cfg.SessionTTL)
	// The refresh token, when the issuer gave one (OIDC_SCOPES with
	// offline_access at Hydra and Dex), lets the session's roles be read
	// again while it lives (refresh.go).
	sid, err := f.sessions.CreateSession(r.Context(), hashToken(secret), id, expires, tok.RefreshToken)
	if err != nil {
		return err
	}
	f.endPrevious(r)
	f.setCookie(w, r, SessionCookie, secret, "/", int(f.cfg.SessionTTL.Seconds()))
	f.setCookie(w, r, nameCookie, encodeName(secret, person.Name), "/", int(f.cfg.SessionTTL.Seconds()))
	f.cfg.Logger.InfoContext(r.Context(), "signed in", "user_id", id.UserID, "session_id", sid, "roles", id.Roles,
		"refreshable", tok.RefreshToken != "")
	http.Redirect(w, r, cmp.Or(attempt.RedirectPath, f.cfg.DefaultRedirect), http.StatusFound)
	return nil
}

// Logout ends the session: POST /auth/logout. Its streams close on every node.
func (f *Flow) Logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(SessionCookie); err == nil && wellFormed(c.Value, sessionBytes) {
		sid, err := f.sessions.EndSession(r.Context(), hashToken(c.Value))
		if err != nil {
			return err
		}
		if sid != "" {
			f.cfg.Logger.InfoContext(r.Context(), "signed out", "session_id", sid)
		}
	}
	f.setCookie(w, r, SessionCookie, "", "/", -1)
	f.setCookie(w, r, nameCookie, "", "/", -1)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// endPrevious ends the session the browser held before signing in again.
// The new session's user and roles come from the new ID token, and the old
// one, with the roles of its day, must not live on beside it (its streams
// close and reconnect with the new cookie). A failure is logged: the old
// session still expires.
func (f *Flow) endPrevious(r *http.Request) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || !wellFormed(c.Value, sessionBytes) {
		return
	}
	sid, err := f.sessions.EndSession(r.Context(), hashToken(c.Value))
	if err != nil {
		f.cfg.Logger.WarnContext(r.Context(), "end the session replaced by a new sign-in", "err", err)
		return
	}
	if sid != "" {
		f.cfg.Logger.InfoContext(r.Context(), "session replaced by a new sign-in", "session_id", sid)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
