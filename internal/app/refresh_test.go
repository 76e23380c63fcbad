package app_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/testkit/hydratest"
)

// TestHydraSessionRefresh: a browser session's roles follow the provider
// while it lives, against Ory Hydra. With offline_access in OIDC_SCOPES the
// sign-in gets a refresh token; once the session's roles are older than
// NOTIFY_SESSION_REFRESH the node refreshes them at Hydra (whose token hook
// puts the user's groups of now in the new ID token). After alice's groups
// change, her open stream is told its roles changed and ends, the session
// answers with the new roles, and the stream she opens again gets the new
// role's notifications and not the removed one's. Revoking her consent at
// Hydra ends the session at its next refresh: its stream is signed out and
// the cookie no longer works. A session signed in without offline_access
// has no refresh token and keeps the roles of its sign-in, as before.
func TestHydraSessionRefresh(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	user := alice // her groups change in this test's Hydra only
	user.Groups = []string{"ADMIN", "team-a"}
	hydra := hydratest.Start(t, user)
	creds := url.Values{"username": {user.Username}, "password": {user.Password}}

	env := apptest.NewEnv(t)
	cfg := hydraConfig(env, hydra)
	cfg.Scopes = []string{"openid", "offline_access", "profile", "groups"}
	cfg.SessionRefresh = 500 * time.Millisecond
	node, base := startWithSignIn(t, env, cfg)
	plainCfg := cfg
	plainCfg.Scopes = []string{"openid", "profile", "groups"} // no offline_access
	plainNode, plainBase := startWithSignIn(t, env, plainCfg)
	hydra.RegisterClient(t, hydratest.Client{
		ID: cfg.OIDC.Audience, Secret: cfg.ClientSecret,
		RedirectURIs: []string{base + "/auth/callback", plainBase + "/auth/callback"},
		Scopes:       []string{"openid", "offline_access", "profile", "groups"},
		Audience:     []string{cfg.OIDC.Audience},
	})

	// All sign in before the change; the plain and the idle session (no
	// stream) first, so they are at least as old as b's whenever b's
	// refreshes.
	plain := newBrowser(t)
	plain.signInAtProvider(plainBase, creds)
	idle := newBrowser(t)
	idle.signInAtProvider(base, creds)
	b := newBrowser(t)
	if scopes := b.signInAtProvider(base, creds); !slices.Contains(scopes, "offline_access") {
		t.Fatalf("scopes asked of Hydra: %q, want OIDC_SCOPES with offline_access", scopes)
	}
	for _, s := range []struct {
		b           *browser
		base        string
		refreshable bool
	}{{plain, plainBase, false}, {b, base, true}} {
		if who, roles := s.b.whoami(s.base); who != "alice" || !slices.Equal(roles, []string{"ADMIN", "team-a"}) {
			t.Fatalf("signed in as %q with roles %v; want alice [ADMIN team-a]", who, roles)
		}
		if got := hasRefreshToken(t, env, s.b, s.base); got != s.refreshable {
			t.Fatalf("session at %s has a refresh token: %v, want %v", s.base, got, s.refreshable)
		}
	}
	plainStream := openCookieStream(t, plain, plainNode.URL())
	stream := openCookieStream(t, b, node.URL())

	hydra.SetGroups("alice", "team-b")

	t.Run("with offline_access the roles follow the provider and streams reconnect with them", func(t *testing.T) {
		// The sweep of the node serving the stream refreshes the session.
		stream.next(t, `"closing":"session_changed"`, 30*time.Second)
		stream.ended(t)
		if who, roles := b.whoami(base); who != "alice" || !slices.Equal(roles, []string{"team-b"}) {
			t.Fatalf("after the refresh: %q with roles %v; want alice [team-b]", who, roles)
		}
		again := openCookieStream(t, b, node.URL())
		publishToRoles(t, env, "to team-a", "team-a")
		publishToRoles(t, env, "to team-b", "team-b")
		publishToRoles(t, env, "to everyone")
		seen := again.until(t, "to everyone", 10*time.Second)
		if !strings.Contains(seen, "to team-b") || strings.Contains(seen, "to team-a") {
			t.Fatalf("the new stream got, before the notification to everyone:\n%s\nwant the one to team-b and not the one to team-a", seen)
		}
	})

	t.Run("a session without streams is refreshed when it is next used", func(t *testing.T) {
		// No stream, so no sweep refreshed it: the request did.
		if who, roles := idle.whoami(base); who != "alice" || !slices.Equal(roles, []string{"team-b"}) {
			t.Fatalf("idle session used after the change: %q with roles %v; want alice [team-b]", who, roles)
		}
	})

	t.Run("without offline_access the session keeps the roles of its sign-in", func(t *testing.T) {
		// As old as the idle session, used now as it was, and not
		// refreshed: it has no refresh token.
		if who, roles := plain.whoami(plainBase); who != "alice" || !slices.Equal(roles, []string{"ADMIN", "team-a"}) {
			t.Fatalf("plain session: %q with roles %v; want alice [ADMIN team-a] as at sign-in", who, roles)
		}
		seen := plainStream.until(t, "to everyone", 10*time.Second) // its stream is still the first one
		if !strings.Contains(seen, "to team-a") || strings.Contains(seen, "to team-b") || strings.Contains(seen, `"closing"`) {
			t.Fatalf("the plain session's stream got:\n%s\nwant the notification to team-a, not the one to team-b, no closing", seen)
		}
	})

	t.Run("a grant revoked at the provider ends the session", func(t *testing.T) {
		again := openCookieStream(t, b, node.URL())
		hydra.RevokeConsent(t, user.Subject)
		again.closedForLogout(t, 30*time.Second)
		if _, err := b.openStream(node.URL()); !isStatus(err, http.StatusUnauthorized) {
			t.Fatalf("the ended session opened a stream: %v", err)
		}
		// The plain session has no grant to lose; it lives on as before.
		if who, roles := plain.whoami(plainBase); who != "alice" || !slices.Equal(roles, []string{"ADMIN", "team-a"}) {
			t.Fatalf("plain session after the revocation: %q with roles %v", who, roles)
		}
	})
}

// hasRefreshToken reports whether the browser's session keeps a refresh
// token, read from the database by its user and newest creation.
func hasRefreshToken(t *testing.T, env *apptest.Env, b *browser, base string) bool {
	t.Helper()
	u, _ := url.Parse(base)
	var cookie string
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "notifyd_session" {
			cookie = c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie")
	}
	var has bool
	if err := env.DB.Pool.QueryRow(context.Background(), `SELECT refresh_token IS NOT NULL FROM notify.sessions
		WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, cookie).Scan(&has); err != nil {
		t.Fatalf("read the session: %v", err)
	}
	return has
}

// publishToRoles inserts a notification for roles (for everyone when none),
// as an internal app does.
func publishToRoles(t *testing.T, env *apptest.Env, message string, roles ...string) {
	t.Helper()
	var target any
	if len(roles) > 0 {
		target = roles
	}
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (target_roles, message)
		VALUES ($1, $2)`, target, message); err != nil {
		t.Fatalf("publish %q: %v", message, err)
	}
}

// until reads events up to the first whose data contains want and returns
// the data of all of them, one per line.
func (cs *cookieStream) until(t *testing.T, want string, within time.Duration) string {
	t.Helper()
	var seen strings.Builder
	deadline := time.After(within)
	for {
		select {
		case ev := <-cs.events:
			seen.Write(ev.Data)
			seen.WriteByte('\n')
			if strings.Contains(string(ev.Data), want) {
				return seen.String()
			}
		case <-cs.done:
			for len(cs.events) > 0 { // what came before the end
				ev := <-cs.events
				seen.Write(ev.Data)
				seen.WriteByte('\n')
				if strings.Contains(string(ev.Data), want) {
					return seen.String()
				}
			}
			t.Fatalf("the stream ended (%v) before an event with %s; it got:\n%s", cs.err, want, seen.String())
		case <-deadline:
			t.Fatalf("no event with %s within %s; the stream got:\n%s", want, within, seen.String())
		}
	}
}

// ended checks that the stream ends after its closing status.
func (cs *cookieStream) ended(t *testing.T) {
	t.Helper()
	select {
	case <-cs.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream stayed open after saying it closes")
	}
}
