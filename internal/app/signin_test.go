package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/wire"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so each step of the sign-in can be checked.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, u string, form url.Values, header http.Header) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// signIn goes through the whole code flow as a browser would: notifyd's
// /auth/login, the issuer's sign-in page and form, notifyd's callback. It
// returns the issuer's redirect back to notifyd, before following it, so
// tests can tamper with it; finish calls the callback.
func (b *browser) startSignIn(base, redirect, user string, roles ...string) *url.URL {
	b.t.Helper()
	resp, body := b.do("GET", base+"/auth/login?redirect="+url.QueryEscape(redirect), nil, nil)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	if q := authURL.Query(); q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
		b.t.Fatalf("authorize request lacks PKCE, nonce or state: %s", authURL)
	}
	if resp, body := b.do("GET", authURL.String(), nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "user_id") {
		b.t.Fatalf("issuer sign-in page: %d %s", resp.StatusCode, body)
	}
	form := authURL.Query()
	form.Set("user_id", user)
	form.Set("roles", strings.Join(roles, ","))
	authURL.RawQuery = ""
	resp, body = b.do("POST", authURL.String(), form, nil)
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("issuer approve: %d %s", resp.StatusCode, body)
	}
	back, _ := url.Parse(resp.Header.Get("Location"))
	return back
}

func (b *browser) finish(callback *url.URL) (*http.Response, string) {
	b.t.Helper()
	return b.do("GET", callback.String(), nil, nil)
}

func (b *browser) openStream(base string) (*wire.Stream, error) {
	return wire.Open(context.Background(), b.client, base+"/api/notifications/ws", nil)
}

func errorOf(body string) string {
	var e struct{ Error string }
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error
}

// startWithSignIn starts a node with browser sign-in configured as in
// production: OIDC_REDIRECT_URL names the public address, here a reverse
// proxy in front of the node (a node's own port is only known once it
// listens). It returns the node and the public base URL, which browsers use.
func startWithSignIn(t *testing.T, env *apptest.Env, cfg app.Config) (*app.App, string) {
	t.Helper()
	var proxy atomic.Pointer[httputil.ReverseProxy]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close) // after the node has stopped
	cfg.RedirectURL = front.URL + "/auth/callback"
	srv := env.Start(cfg)
	u, _ := url.Parse(srv.URL())
	proxy.Store(httputil.NewSingleHostReverseProxy(u))
	return srv, front.URL
}

func TestBrowserSignIn(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	_, base := startWithSignIn(t, env, env.Config())

	t.Run("full flow, then the stream and the API with the cookie", func(t *testing.T) {
		b := newBrowser(t)
		resp, body := b.finish(b.startSignIn(base, "/test-notifications?tab=2", "alice", "ADMIN"))
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/test-notifications?tab=2" {
			t.Fatalf("callback: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "notifyd_session" && c.Value != "" {
				cookie = c
			}
		}
		if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
			t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax", cookie)
		}
		s, err := b.openStream(base)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ev, err := s.Next()
		if err != nil || !strings.Contains(string(ev.Data), `"userId":"alice"`) {
			t.Fatalf("connected: %s %v", ev.Data, err)
		}
		// A state change with the cookie from this site is allowed...
		h := http.Header{"Content-Type": {"application/json"}, "Origin": {base}}
		req, _ := http.NewRequest("POST", base+"/api/notifications/ws", strings.NewReader(`{"action":"status"}`))
		req.Header = h
		r2, err := b.client.Do(req)
		if err != nil || r2.StatusCode != http.StatusOK {
			t.Fatalf("status with cookie from this site: %v %v", r2.StatusCode, err)
		}
		r2.Body.Close()
		// ...and from another site is refused (cross-site request forgery).
		req, _ = http.NewRequest("POST", base+"/api/notifications/ws", strings.NewReader(`{"action":"test"}`))
		req.Header = http.Header{"Content-Type": {"application/json"}, "Origin": {"https://evil.example"}}
		r3, err := b.client.Do(req)
		if err != nil || r3.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site POST with cookie: %v %v", r3.StatusCode, err)
		}
		r3.Body.Close()
	})

	t.Run("tampered cookie", func(t *testing.T) {
		b := newBrowser(t)
		b.finish(b.startSignIn(base, "/", "bob"))
		u, _ := url.Parse(base)
		cs := b.client.Jar.Cookies(u)
		for _, c := range cs {
			if c.Name == "notifyd_session" {
				c.Value = c.Value[:len(c.Value)-2] + "xx"
			}
		}
		b.client.Jar.SetCookies(u, cs)
		_, err := b.openStream(base)
		if se, ok := err.(*wire.StatusError); !ok || se.Status != http.StatusUnauthorized {
			t.Fatalf("tampered cookie: %v", err)
		}
	})

	t.Run("wrong state", func(t *testing.T) {
		b := newBrowser(t)
		back := b.startSignIn(base, "/", "carol")
		q := back.Query()
		q.Set("state", "forged")
		back.RawQuery = q.Encode()
		resp, body := b.finish(back)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(errorOf(body), "state") {
			t.Fatalf("wrong state: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("state replayed", func(t *testing.T) {
		b := newBrowser(t)
		back := b.startSignIn(base, "/", "dan")
		if resp, body := b.finish(back); resp.StatusCode != http.StatusFound {
			t.Fatalf("first callback: %d %s", resp.StatusCode, body)
		}
		resp, _ := b.finish(back)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("replayed callback: %d", resp.StatusCode)
		}
	})

	t.Run("wrong nonce", func(t *testing.T) {
		b := newBrowser(t)
		back := b.startSignIn(base, "/", "erin")
		// The sign-in in progress now expects another nonce than the issuer put in the ID token.
		if _, err := env.DB.Pool.Exec(context.Background(), `UPDATE notify.login_attempts SET nonce = 'other' WHERE state = $1`, back.Query().Get("state")); err != nil {
			t.Fatal(err)
		}
		resp, body := b.finish(back)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(errorOf(body), "nonce") {
			t.Fatalf("wrong nonce: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("open redirect refused", func(t *testing.T) {
		b := newBrowser(t)
		for _, target := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "http:/evil"} {
			resp, body := b.do("GET", base+"/auth/login?redirect="+url.QueryEscape(target), nil, nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("redirect=%q: %d %s", target, resp.StatusCode, body)
			}
		}
	})

	t.Run("expired session", func(t *testing.T) {
		b := newBrowser(t)
		b.finish(b.startSignIn(base, "/", "frank"))
		s, err := b.openStream(base)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := env.DB.Pool.Exec(context.Background(), `UPDATE notify.sessions SET expires_at = created_at + interval '1 millisecond' WHERE user_id = 'frank'`); err != nil {
			t.Fatal(err)
		}
		if _, err := b.openStream(base); err == nil || err.(*wire.StatusError).Status != http.StatusUnauthorized {
			t.Fatalf("expired session opened a stream: %v", err)
		}
	})

	t.Run("logout closes the session's streams and the cookie stops working", func(t *testing.T) {
		b := newBrowser(t)
		b.finish(b.startSignIn(base, "/", "gina"))
		s, err := b.openStream(base)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Next(); err != nil { // connected
			t.Fatal(err)
		}
		// Logout from another site is refused.
		if resp, _ := b.do("POST", base+"/auth/logout", url.Values{}, http.Header{"Origin": {"https://evil.example"}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site logout: %d", resp.StatusCode)
		}
		u, _ := url.Parse(base)
		saved := b.client.Jar.Cookies(u)
		if resp, body := b.do("POST", base+"/auth/logout", url.Values{}, http.Header{"Origin": {base}}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("logout: %d %s", resp.StatusCode, body)
		}
		closing := false
		for {
			ev, err := s.Next()
			if err != nil {
				break
			}
			if strings.Contains(string(ev.Data), `"closing":"logout"`) {
				closing = true
			}
		}
		if !closing {
			t.Error("stream ended without a logout status message")
		}
		b.client.Jar.SetCookies(u, saved) // a copy of the old cookie must not work either
		if _, err := b.openStream(base); err == nil || err.(*wire.StatusError).Status != http.StatusUnauthorized {
			t.Fatalf("logged-out cookie opened a stream: %v", err)
		}
	})
}

// TestStreamClosesAtTokenExpiry: a bearer token's stream ends when the token does.
func TestStreamClosesAtTokenExpiry(t *testing.T) {
	t.Parallel()
	env, srv := apptest.NewNode(t)
	tok, err := env.Issuer.Token("hank", nil, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	r := apptest.Open(t, srv.URL(), tok, "")
	m, ok := r.NextOfType("status", 10*time.Second)
	if !ok || !strings.Contains(string(m.Data), `"closing":"expired"`) {
		t.Fatalf("want a status saying the credentials expired, got %+v", m)
	}
	if !r.Ended(5 * time.Second) {
		t.Fatal("stream still open after token expiry")
	}
}

// TestStreamClosesAtSessionExpiry: a cookie stream ends when its session does.
func TestStreamClosesAtSessionExpiry(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.SessionTTL = 2 * time.Second
	_, base := startWithSignIn(t, env, cfg)
	b := newBrowser(t)
	b.finish(b.startSignIn(base, "/", "ivy"))
	s, err := b.openStream(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.AfterFunc(20*time.Second, func() { s.Close() }) // bound the wait if it never closes
	expired := false
	for {
		ev, err := s.Next()
		if err != nil {
			break
		}
		if strings.Contains(string(ev.Data), `"closing":"expired"`) {
			expired = true
		}
	}
	if !expired {
		t.Fatal("stream ended without saying the session expired")
	}
}

// getWithHost sends GET u with a forged Host header, not following redirects.
func getWithHost(t *testing.T, u, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestBrowserSignInNeedsRedirectURL: outside development the Host header is
// the caller's to choose, so a callback address built from it would let
// anyone have the issuer send sign-in codes elsewhere. Without
// OIDC_REDIRECT_URL browser sign-in is off: 503 with what to set, no
// redirect, nothing written; one warning at start; bearer tokens work.
func TestBrowserSignInNeedsRedirectURL(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config() // no OIDC_REDIRECT_URL, no development sign-in
	logs, log := newLogBuffer(t)
	cfg.Logger = log
	srv := env.Start(cfg)
	const want = "browser sign-in is not configured: set OIDC_REDIRECT_URL (and OIDC_CLIENT_SECRET)"
	for _, path := range []string{"/auth/login?redirect=%2F", "/auth/callback?code=c&state=s"} {
		resp, body := getWithHost(t, srv.URL()+path, "evil.example")
		if resp.StatusCode != http.StatusServiceUnavailable || errorOf(body) != want {
			t.Errorf("%s: %d %s, want 503 %q", path, resp.StatusCode, body, want)
		}
		if loc := resp.Header.Get("Location"); loc != "" || len(resp.Cookies()) > 0 {
			t.Errorf("%s: redirected to %q, cookies %v", path, loc, resp.Cookies())
		}
	}
	var n int
	if err := env.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM notify.login_attempts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("sign-ins recorded: %d %v", n, err)
	}
	if got := logs.lines("sign-in"); len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "OIDC_REDIRECT_URL") {
		t.Errorf("want one warning naming OIDC_REDIRECT_URL, got %q", got)
	}
	r := apptest.Open(t, srv.URL(), env.Token("alice"), "")
	if _, ok := r.NextOfType("connected", 10*time.Second); !ok {
		t.Fatal("a bearer token no longer opens a stream")
	}
}

// TestDevSignInIgnoresHostHeader: with development sign-in the callback is
// the node's own (loopback) listen address, whatever Host the request says.
func TestDevSignInIgnoresHostHeader(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.DevAuth = true
	srv := env.Start(cfg)
	resp, body := getWithHost(t, srv.URL()+"/auth/login?redirect=%2F", "evil.example:666")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	authURL, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, "evil.example") || authURL.Query().Get("redirect_uri") != srv.URL()+"/auth/callback" {
		t.Fatalf("authorization redirect %s, want redirect_uri %s/auth/callback", loc, srv.URL())
	}
	// And development sign-in still works end to end.
	b := newBrowser(t)
	resp, body = b.finish(b.startSignIn(srv.URL(), "/test-notifications", "zoe"))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/test-notifications" {
		t.Fatalf("callback: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}
