package app_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// startDexLike serves an issuer that behaves as Dex does where it matters
// here: "sub" is opaque, preferred_username and name come with the profile
// scope, and groups only with the groups scope.
func startDexLike(t *testing.T) *issuer.Issuer {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	iss, err := issuer.New(issuer.Config{URL: srv.URL, ClientID: apptest.Audience, OpaqueSubjects: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = iss.Handler()
	return iss
}

// signInNamed is startSignIn and finish with a display name typed on the
// issuer's page; it returns the scopes notifyd asked for.
func (b *browser) signInNamed(base, user, name string, roles ...string) []string {
	b.t.Helper()
	resp, body := b.do("GET", base+"/auth/login?redirect=%2Ftest-notifications", nil, nil)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	form := authURL.Query()
	form.Set("user_id", user)
	form.Set("name", name)
	form.Set("roles", strings.Join(roles, ","))
	authURL.RawQuery = ""
	resp, body = b.do("POST", authURL.String(), form, nil)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("issuer approve: %d %s", resp.StatusCode, body)
	}
	back, _ := url.Parse(resp.Header.Get("Location"))
	if resp, body := b.finish(back); resp.StatusCode != http.StatusFound {
		b.t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	return strings.Fields(form.Get("scope"))
}

// whoami is the identity the status action reports for the browser's session.
func (b *browser) whoami(base string) (user string, roles []string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/notifications/ws", strings.NewReader(`{"action":"status"}`))
	req.Header = http.Header{"Origin": {base}, "Content-Type": {"application/json"}}
	r, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer r.Body.Close()
	var st struct {
		UserID string   `json:"userId"`
		Roles  []string `json:"roles"`
	}
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil || r.StatusCode != http.StatusOK {
		b.t.Fatalf("status: %d %v", r.StatusCode, err)
	}
	return st.UserID, st.Roles
}

// TestSignInScopesAndClaims: against a Dex-like issuer, OIDC_SCOPES asks for
// groups, OIDC_ROLES_CLAIM reads them, OIDC_USER_CLAIM makes the typed user
// name the user id (not the opaque sub), the page shows OIDC_NAME_CLAIM,
// and signing in again re-reads the roles and ends the old session.
func TestSignInScopesAndClaims(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	dex := startDexLike(t)
	cfg := env.Config()
	cfg.OIDC.IssuerURL = dex.URL()
	cfg.OIDC.RolesClaim, cfg.OIDC.UserClaim = "groups", "preferred_username"
	cfg.Scopes = []string{"openid", "profile", "groups"}
	_, base := startWithSignIn(t, env, cfg)

	b := newBrowser(t)
	scopes := b.signInNamed(base, "alice", "Alice Liddell", "USER")
	if !slices.Equal(scopes, []string{"openid", "profile", "groups"}) {
		t.Fatalf("scopes asked for: %v", scopes)
	}
	if user, roles := b.whoami(base); user != "alice" || !slices.Equal(roles, []string{"USER"}) {
		t.Fatalf("identity after sign-in: %q %v; want alice [USER]", user, roles)
	}
	resp, page := b.do("GET", base+"/test-notifications", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="user-name"`) || !strings.Contains(page, ">Alice Liddell</span>") {
		t.Fatalf("page: %d, want the display name in #user-name", resp.StatusCode)
	}

	t.Run("signing in again re-reads the roles and ends the old session", func(t *testing.T) {
		u, _ := url.Parse(base)
		old := b.client.Jar.Cookies(u)
		b.signInNamed(base, "alice", "Alice Liddell", "USER", "ADMIN")
		if user, roles := b.whoami(base); user != "alice" || !slices.Equal(roles, []string{"USER", "ADMIN"}) {
			t.Fatalf("identity after signing in again: %q %v; want alice [USER ADMIN]", user, roles)
		}
		stale := newBrowser(t)
		stale.client.Jar.SetCookies(u, old)
		if _, err := stale.openStream(base); err == nil {
			t.Fatal("the replaced session still opens streams")
		}
	})

	t.Run("a forged name cookie shows no name", func(t *testing.T) {
		u, _ := url.Parse(base)
		cs := b.client.Jar.Cookies(u)
		for _, c := range cs {
			if c.Name == "notifyd_name" {
				c.Value = "TWFsbG9yeQ." + strings.Repeat("A", 43) // "Mallory", with a MAC that is not the session's
			}
		}
		b.client.Jar.SetCookies(u, cs)
		resp, page := b.do("GET", base+"/test-notifications", nil, nil)
		if resp.StatusCode != http.StatusOK || strings.Contains(page, "Mallory") || !strings.Contains(page, `(OIDC_NAME_CLAIM)"></span>`) {
			t.Fatalf("page with a forged name cookie: %d", resp.StatusCode)
		}
	})

	t.Run("without the groups scope there are no roles", func(t *testing.T) {
		cfg := cfg
		cfg.Scopes = nil // the default, openid profile
		_, base := startWithSignIn(t, env, cfg)
		b := newBrowser(t)
		if scopes := b.signInNamed(base, "bob", "", "ADMIN"); !slices.Equal(scopes, []string{"openid", "profile"}) {
			t.Fatalf("default scopes: %v", scopes)
		}
		if user, roles := b.whoami(base); user != "bob" || len(roles) != 0 {
			t.Fatalf("identity: %q %v; want bob without roles", user, roles)
		}
	})
}

// TestBearerUserClaim: a bearer token's user id is OIDC_USER_CLAIM, and a
// token without that claim is refused with a 401 JSON error naming it.
func TestBearerUserClaim(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.OIDC.UserClaim = "email"
	srv := env.Start(cfg)
	claims := func(extra map[string]any) string {
		c := map[string]any{"iss": env.Issuer.URL(), "aud": apptest.Audience, "sub": "opaque-1",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		tok, err := env.Issuer.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	r := apptest.Open(t, srv.URL(), claims(map[string]any{"email": "carol@example.test"}), "")
	defer r.Close()
	if m, ok := r.NextOfType("connected", 10*time.Second); !ok || m.UserID != "carol@example.test" {
		t.Fatalf("connected: %+v %v", m, ok)
	}

	req, _ := http.NewRequest("GET", srv.URL()+"/api/notifications/ws", nil)
	req.Header.Set("Authorization", "Bearer "+claims(nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(e.Error, `"email"`) || !strings.Contains(e.Error, "OIDC_USER_CLAIM") {
		t.Fatalf("token without the user claim: %d %q %v", resp.StatusCode, e.Error, err)
	}
}
