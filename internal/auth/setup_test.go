package auth_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/testkit"
)

// testIssuer is a real OpenID Connect issuer on a real HTTP server. While
// down is set it drops every connection without answering, as a crashed or
// not yet started issuer would; while cutKeys is set it answers a key
// fetch with 200 and then drops the connection in the middle of the body.
type testIssuer struct {
	*issuer.Issuer
	cutKeys  atomic.Bool
	down     atomic.Bool
	requests atomic.Int64
}

// startIssuer serves an issuer at /dev-issuer of a new test server, mounted
// the way notifyd mounts its development issuer.
func startIssuer(t *testing.T, mutate func(*issuer.Config)) *testIssuer {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg := issuer.Config{URL: "http://" + srv.Listener.Addr().String() + "/dev-issuer", Logger: testLogger(t)}
	if mutate != nil {
		mutate(&cfg)
	}
	iss, err := issuer.New(cfg)
	if err != nil {
		t.Fatalf("issuer.New: %v", err)
	}
	ti := &testIssuer{Issuer: iss}
	mux := http.NewServeMux()
	mux.Handle(iss.MountPath(), iss.Handler())
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti.requests.Add(1)
		if ti.down.Load() {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if ti.cutKeys.Load() && r.URL.Path == strings.TrimPrefix(iss.JWKSURL(), srv.URL) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"keys\":["))
				conn.Close()
			}
			return
		}
		mux.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return ti
}

// newVerifier returns a verifier for ti's tokens and the clock it runs on.
func newVerifier(t *testing.T, ti *testIssuer, mutate func(*auth.Config)) (*auth.Verifier, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(time.Now())
	cfg := auth.Config{
		IssuerURL: ti.URL(),
		Audience:  ti.ClientID(),
		Logger:    testLogger(t),
		Clock:     clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v, clock
}

// claims are valid claims for ti's client, to be spoiled by a test.
func (ti *testIssuer) claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": ti.URL(), "aud": ti.ClientID(), "sub": sub,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "roles": []string{"USER"},
	}
}

func (ti *testIssuer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok, err := ti.Sign(claims)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// testLogger sends everything the code under test logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
