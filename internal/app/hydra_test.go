package app_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/testkit/hydratest"
	"github.com/notifyd/notifyd/internal/wire"
)

// alice, at the provider: her sub is opaque, her user name and groups are
// what notifyd should use.
var alice = hydratest.User{
	Username: "alice", Password: "correct horse", Subject: "6f1c1c52-8b44-4d8e-9a3e-3f8e2a6c90b1",
	Name: "Alice Liddell", Email: "alice@example.com", Groups: []string{"ADMIN", "team-a"},
}

// TestHydra: browser sign-in and bearer tokens against Ory Hydra, a real
// third-party OpenID Connect provider built from the Go module proxy
// (package hydratest), with its login page in front of a user table that
// puts groups in tokens only when the groups scope is asked for, as Dex and
// Okta do. OIDC_SCOPES asks for groups and OIDC_ROLES_CLAIM reads them;
// OIDC_USER_CLAIM makes preferred_username the user id, not Hydra's opaque
// sub; OIDC_NAME_CLAIM names the user on the page. With the default scopes
// the same sign-in gives no roles. Hydra's ID token and JWT access token
// open a stream and publish. Roles are read from the tokens of each
// sign-in, so signing in again picks up a change at the provider.
func TestHydra(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	hydra := hydratest.Start(t, alice)
	creds := url.Values{"username": {alice.Username}, "password": {alice.Password}}

	env := apptest.NewEnv(t)
	cfg := hydraConfig(env, hydra)
	cfg.OIDC.NameClaim = "name"
	cfg.Scopes = []string{"openid", "profile", "email", "groups"}
	_, base := startWithSignIn(t, env, cfg)
	plain := cfg
	plain.Scopes = nil // the default, openid profile
	_, plainBase := startWithSignIn(t, env, plain)
	// An app of the same deployment that signs its users in itself and
	// hands notifyd their tokens; Hydra only sends its codes to registered
	// callbacks, and this one is never followed.
	const appCallback = "http://127.0.0.1:1/app/callback"
	hydra.RegisterClient(t, hydratest.Client{
		ID: cfg.OIDC.Audience, Secret: cfg.ClientSecret,
		RedirectURIs: []string{base + "/auth/callback", plainBase + "/auth/callback", appCallback},
		Scopes:       []string{"openid", "offline_access", "profile", "email", "groups"},
		Audience:     []string{cfg.OIDC.Audience},
	})

	t.Run("sign-in through the login page: user from preferred_username, roles from groups", func(t *testing.T) {
		b := newBrowser(t)
		if scopes := b.signInAtProvider(base, creds); !slices.Equal(scopes, cfg.Scopes) {
			t.Fatalf("scopes asked of Hydra: %q, want OIDC_SCOPES %q", scopes, cfg.Scopes)
		}
		if user, roles := b.whoami(base); user != "alice" || !slices.Equal(roles, []string{"ADMIN", "team-a"}) {
			t.Fatalf("signed in as %q with roles %v; want alice [ADMIN team-a]", user, roles)
		}
		if resp, page := b.do("GET", base+"/test-notifications", nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(page, ">Alice Liddell</span>") {
			t.Fatalf("page: %d, want the name from Hydra", resp.StatusCode)
		}
	})

	t.Run("default scopes: no groups claim, no roles", func(t *testing.T) {
		b := newBrowser(t)
		if scopes := b.signInAtProvider(plainBase, creds); !slices.Equal(scopes, []string{"openid", "profile"}) {
			t.Fatalf("scopes asked of Hydra by default: %q", scopes)
		}
		if user, roles := b.whoami(plainBase); user != "alice" || len(roles) != 0 {
			t.Fatalf("signed in as %q with roles %v; want alice and no roles", user, roles)
		}
	})

	t.Run("Hydra's ID token and access token as bearer tokens", func(t *testing.T) {
		b := newBrowser(t)
		oc := oauth2.Config{ClientID: cfg.OIDC.Audience, ClientSecret: cfg.ClientSecret, RedirectURL: appCallback,
			Endpoint: oauth2.Endpoint{AuthURL: hydra.IssuerURL + "/oauth2/auth", TokenURL: hydra.IssuerURL + "/oauth2/token",
				AuthStyle: oauth2.AuthStyleInHeader},
			Scopes: []string{"openid", "profile", "groups"}}
		authURL, _ := url.Parse(oc.AuthCodeURL("app-state-0123456789", oauth2.SetAuthURLParam("audience", cfg.OIDC.Audience)))
		back := b.authorize(authURL, appCallback, creds)
		if back.Query().Get("state") != "app-state-0123456789" {
			t.Fatalf("callback state: %s", back)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tok, err := oc.Exchange(ctx, back.Query().Get("code"))
		if err != nil {
			t.Fatalf("code exchange at Hydra: %v", err)
		}
		idToken, _ := tok.Extra("id_token").(string)
		for _, bearer := range []struct{ name, token string }{{"ID token", idToken}, {"access token", tok.AccessToken}} {
			if strings.Count(bearer.token, ".") != 2 {
				t.Fatalf("Hydra's %s is not a JWT: %q", bearer.name, bearer.token)
			}
			r := apptest.Open(t, base, bearer.token, "")
			if m, ok := r.NextOfType("connected", 10*time.Second); !ok || m.UserID != "alice" {
				t.Fatalf("stream with Hydra's %s: connected %v as %q, want alice", bearer.name, ok, m.UserID)
			}
			msg := "published with Hydra's " + bearer.name
			if resp := request(t, "POST", base+"/api/notifications", bearer.token, `{"targetUserId":"alice","message":"`+msg+`"}`, nil); resp.StatusCode != http.StatusCreated {
				t.Fatalf("publish with Hydra's %s (group ADMIN): %d", bearer.name, resp.StatusCode)
			}
			if m, ok := r.NextOfType("notification", 10*time.Second); !ok || m.Notification().Message != msg {
				t.Fatalf("notification %v: %q, want %q", ok, m.Notification().Message, msg)
			}
		}
	})

	t.Run("signing in again reads the groups the provider has now", func(t *testing.T) {
		b := newBrowser(t)
		b.signInAtProvider(base, creds)
		if _, roles := b.whoami(base); !slices.Equal(roles, []string{"ADMIN", "team-a"}) {
			t.Fatalf("first sign-in: roles %v", roles)
		}
		old := b.client.Jar.Cookies(mustParse(t, base))
		hydra.SetGroups("alice", "team-b")
		// Hydra remembers alice's login: no login page this time (nil
		// credentials), but a new consent with her current claims.
		b.signInAtProvider(base, nil)
		if user, roles := b.whoami(base); user != "alice" || !slices.Equal(roles, []string{"team-b"}) {
			t.Fatalf("signed in again as %q with roles %v; want alice [team-b]", user, roles)
		}
		// The session with the roles of its day is over.
		stale := newBrowser(t)
		stale.client.Jar.SetCookies(mustParse(t, base), old)
		if _, err := stale.openStream(base); !isStatus(err, http.StatusUnauthorized) {
			t.Fatalf("the replaced session opened a stream: %v", err)
		}
	})
}

func isStatus(err error, status int) bool {
	var se *wire.StatusError
	return errors.As(err, &se) && se.Status == status
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// hydraConfig is a server signing in at hydra as its client "notifyd",
// with roles from groups and the user id from preferred_username.
func hydraConfig(env *apptest.Env, hydra *hydratest.Provider) app.Config {
	cfg := env.Config()
	cfg.OIDC.IssuerURL, cfg.OIDC.Audience = hydra.IssuerURL, "notifyd"
	cfg.ClientSecret = "notifyd-secret-for-tests"
	cfg.OIDC.RolesClaim, cfg.OIDC.UserClaim = "groups", "preferred_username"
	return cfg
}
