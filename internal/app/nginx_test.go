package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestBehindNginx runs a node behind Debian's real nginx with the
// configuration the README shows, the node trusting it
// (NOTIFY_TRUSTED_PROXIES) and no OIDC_REDIRECT_URL: browser sign-in builds
// its callback from the forwarded host, streams pass unbuffered, heartbeats
// every second keep a stream open past nginx's 3 s proxy_read_timeout, a
// resume with Last-Event-ID works through it, rate limits see the browser's
// address rather than nginx's, and all of it over TLS with HTTP/2 too.
func TestBehindNginx(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.Stream.HeartbeatInterval = time.Second
	cfg.LoginRate, cfg.LoginBurst = 0.001, 3 // no refill during the test
	srv := env.Start(cfg)
	ngx := startNginx(t, srv.Addr(), "3s")
	admin := env.Token("svc", "ADMIN")
	publishWith := func(client *http.Client, base, user, msg string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/api/notifications", strings.NewReader(fmt.Sprintf(`{"targetUserId":%q,"message":%q}`, user, msg)))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish through nginx: %d", resp.StatusCode)
		}
	}
	publish := func(base, user, msg string) { t.Helper(); publishWith(http.DefaultClient, base, user, msg) }

	t.Run("sign-in callback from the forwarded host", func(t *testing.T) {
		b := newBrowser(t)
		back := b.startSignIn(ngx.httpURL, "/test-notifications", "alice", "USER")
		if got := back.Scheme + "://" + back.Host + back.Path; got != ngx.httpURL+"/auth/callback" {
			t.Fatalf("callback %q, want nginx's address %q", got, ngx.httpURL+"/auth/callback")
		}
		if resp, body := b.finish(back); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/test-notifications" {
			t.Fatalf("callback through nginx: %d %s", resp.StatusCode, body)
		}
		s, err := b.openStream(ngx.httpURL)
		if err != nil {
			t.Fatalf("stream with the session cookie through nginx: %v", err)
		}
		defer s.Close()
		if ev, err := s.Next(); err != nil || !strings.Contains(string(ev.Data), `"userId":"alice"`) {
			t.Fatalf("connected: %s %v", ev.Data, err)
		}
	})

	t.Run("heartbeats keep a stream past proxy_read_timeout", func(t *testing.T) {
		r := apptest.Open(t, ngx.httpURL, env.Token("bob"), "")
		if _, ok := r.NextOfType("connected", 10*time.Second); !ok {
			t.Fatalf("no connected message: %v", r.Err())
		}
		// Five heartbeats a second apart: the stream has lived longer than
		// nginx's 3 s read timeout would allow an idle upstream.
		for i := range 5 {
			if _, ok := r.NextOfType("heartbeat", 10*time.Second); !ok {
				t.Fatalf("heartbeat %d: stream ended: %v", i+1, r.Err())
			}
		}
		publish(ngx.httpURL, "bob", "after the read timeout")
		if m, ok := r.NextOfType("notification", 10*time.Second); !ok || m.Notification().Message != "after the read timeout" {
			t.Fatalf("notification after the read timeout: %+v %v", m, r.Err())
		}
	})

	t.Run("resume with Last-Event-ID", func(t *testing.T) {
		r := apptest.Open(t, ngx.httpURL, env.Token("carol"), "")
		if _, ok := r.NextOfType("connected", 10*time.Second); !ok {
			t.Fatal("no connected message")
		}
		for i := range 3 {
			publish(ngx.httpURL, "carol", fmt.Sprintf("c%d", i))
		}
		got := r.Notifications(3, 10*time.Second)
		if len(got) != 3 {
			t.Fatalf("%d notifications, want 3", len(got))
		}
		r.Close()
		publish(ngx.httpURL, "carol", "c3")
		r2 := apptest.Open(t, ngx.httpURL, env.Token("carol"), got[0].EventID)
		resumed := r2.Notifications(3, 10*time.Second)
		var msgs []string
		for _, m := range resumed {
			msgs = append(msgs, m.Notification().Message)
		}
		if strings.Join(msgs, ",") != "c1,c2,c3" || resumed[0].EventID != got[1].EventID {
			t.Fatalf("resumed after %s: %v", got[0].EventID, msgs)
		}
	})

	t.Run("rate limits see the browser's address, not nginx's", func(t *testing.T) {
		login := func(client *http.Client, spoof string) int {
			req, _ := http.NewRequest("GET", ngx.httpURL+"/auth/login", nil)
			req.Header.Set("X-Forwarded-For", spoof) // nginx appends the real peer
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		a := &http.Client{Transport: fromAddr("127.0.0.2"), CheckRedirect: noRedirect}
		for i := range 3 {
			if got := login(a, fmt.Sprintf("203.0.113.%d", i)); got != http.StatusFound {
				t.Fatalf("sign-in %d from 127.0.0.2: %d", i, got)
			}
		}
		if got := login(a, "203.0.113.99"); got != http.StatusTooManyRequests {
			t.Fatalf("4th sign-in from 127.0.0.2 with a new made-up X-Forwarded-For: %d, want 429", got)
		}
		other := &http.Client{Transport: fromAddr("127.0.0.3"), CheckRedirect: noRedirect}
		if got := login(other, ""); got != http.StatusFound {
			t.Fatalf("sign-in from another browser (127.0.0.3) behind the same proxy: %d, want its own bucket", got)
		}
	})

	t.Run("TLS and HTTP/2", func(t *testing.T) {
		pem, err := os.ReadFile(filepath.Join(ngx.dir, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		var h2 atomic.Int64
		tr := &protoCounter{h2: &h2, host: strings.TrimPrefix(ngx.httpsURL, "https://"), base: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
		jar, _ := cookiejar.New(nil)
		b := &browser{t: t, client: &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

		back := b.startSignIn(ngx.httpsURL, "/test-notifications", "dora", "USER")
		if got := back.Scheme + "://" + back.Host + back.Path; got != ngx.httpsURL+"/auth/callback" {
			t.Fatalf("callback %q, want %q", got, ngx.httpsURL+"/auth/callback")
		}
		resp, body := b.finish(back)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("callback over TLS: %d %s", resp.StatusCode, body)
		}
		secure := false
		for _, c := range resp.Cookies() {
			if c.Name == "notifyd_session" && c.Value != "" {
				secure = c.Secure
			}
		}
		if !secure {
			t.Fatal("session cookie set over https (X-Forwarded-Proto from a trusted proxy) is not Secure")
		}
		// Several streams of one browser share one HTTP/2 connection.
		var streams []*wire.Stream
		for range 8 {
			s, err := wire.Open(context.Background(), b.client, ngx.httpsURL+"/api/notifications/ws", nil)
			if err != nil {
				t.Fatalf("stream over HTTP/2: %v", err)
			}
			defer s.Close()
			streams = append(streams, s)
		}
		for i, s := range streams {
			if ev, err := s.Next(); err != nil || !strings.Contains(string(ev.Data), `"userId":"dora"`) {
				t.Fatalf("stream %d connected: %s %v", i, ev.Data, err)
			}
		}
		publishWith(b.client, ngx.httpsURL, "dora", "over h2")
		for i, s := range streams {
			for {
				ev, err := s.Next()
				if err != nil {
					t.Fatalf("stream %d: %v", i, err)
				}
				if strings.Contains(string(ev.Data), `"over h2"`) {
					break
				}
			}
		}
		if n := h2.Load(); n < 10 {
			t.Fatalf("%d answers over HTTP/2, want every one of them", n)
		}
		if tr.other.Load() != 0 {
			t.Fatalf("%d of nginx's answers over HTTP/1", tr.other.Load())
		}
	})
}

// protoCounter counts nginx's answers by HTTP version (the issuer's, on
// plain HTTP, are not counted).
type protoCounter struct {
	base  http.RoundTripper
	host  string
	h2    *atomic.Int64
	other atomic.Int64
}

func (p *protoCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err == nil && req.URL.Host == p.host {
		if resp.ProtoMajor == 2 {
			p.h2.Add(1)
		} else {
			p.other.Add(1)
		}
	}
	return resp, err
}
