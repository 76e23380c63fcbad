package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestJWKSURLOnly: a node configured with OIDC_JWKS_URL alone (an app that
// mints its own stream tokens) verifies them without discovery, opens
// streams for them, and has no browser sign-in to offer.
func TestJWKSURLOnly(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.OIDC = auth.Config{JWKSURL: env.Issuer.JWKSURL()}
	srv := env.Start(cfg)

	tok, err := env.Issuer.Token("alice", []string{"USER"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := apptest.Open(t, srv.URL(), tok, "")
	defer r.Close()
	if m, ok := r.NextOfType("connected", 10*time.Second); !ok || m.UserID != "alice" {
		t.Fatalf("connected: %+v %v", m, ok)
	}
	if _, err := apptest.TryOpen(srv.URL(), tok+"x", ""); err == nil {
		t.Fatal("a token with a broken signature opened a stream")
	}
	resp, err := http.Get(srv.URL() + "/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/auth/login without an issuer: %d, want 404 (no sign-in routes)", resp.StatusCode)
	}
}
