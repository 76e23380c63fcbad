package auth_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/notify"
)

func TestNewVerifierValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  auth.Config
		want string // the field the error must name
	}{
		{"no issuer", auth.Config{Audience: "a"}, "IssuerURL"},
		{"relative issuer", auth.Config{IssuerURL: "/dev-issuer", Audience: "a"}, "IssuerURL"},
		{"no audience", auth.Config{IssuerURL: "https://id.example"}, "Audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auth.NewVerifier(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// TestDiscoveryIsLazy: notifyd builds its verifier before its own listener,
// which serves the development issuer, is up.
func TestDiscoveryIsLazy(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)
	v, _ := newVerifier(t, ti, nil)
	if n := ti.requests.Load(); n != 0 {
		t.Fatalf("NewVerifier made %d requests, want none", n)
	}
	for range 3 {
		raw, _ := ti.Token("alice", nil, time.Hour)
		if _, err := v.Verify(t.Context(), raw); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if n := ti.requests.Load(); n != 2 {
		t.Errorf("%d requests for 3 tokens, want 2 (discovery and keys, then cached)", n)
	}
}

func TestIssuerDownThenUp(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)
	v, clock := newVerifier(t, ti, nil)
	raw, _ := ti.Token("alice", []string{"USER"}, time.Hour)
	wantUnavailable := func(when string) {
		t.Helper()
		_, err := v.Verify(t.Context(), raw)
		if !errors.Is(err, notify.ErrUnavailable) || errors.Is(err, notify.ErrUnauthenticated) {
			t.Fatalf("%s: err = %v, want unavailable", when, err)
		}
	}

	ti.down.Store(true)
	wantUnavailable("issuer down")
	clock.Advance(time.Second)
	wantUnavailable("issuer still down")
	ti.down.Store(false)
	before := ti.requests.Load()
	clock.Advance(time.Second) // the second failure doubled the back-off to 2s
	wantUnavailable("within back-off")
	if n := ti.requests.Load() - before; n != 0 {
		t.Fatalf("%d requests within the back-off, want none", n)
	}
	clock.Advance(time.Second)
	if id, err := v.Verify(t.Context(), raw); err != nil || id.UserID != "alice" {
		t.Fatalf("after the back-off: %+v, %v", id, err)
	}

	// Keys that cannot be fetched are unavailability too, not a bad token:
	// a token from an unknown key refetches the key set once the refetch
	// cooldown has passed.
	other := startIssuer(t, func(c *issuer.Config) { c.URL = ti.URL() })
	stranger := other.sign(t, ti.claims("alice"))
	clock.Advance(30 * time.Second)
	ti.down.Store(true)
	wantUnavailableFor(t, v, stranger)
	// The token from the issuer's own key still verifies from the cache.
	if id, err := v.Verify(t.Context(), raw); err != nil || id.UserID != "alice" {
		t.Fatalf("known key while the issuer is down: %+v, %v", id, err)
	}
	ti.down.Store(false)
	clock.Advance(time.Second) // the failed fetch is retried after a 1s back-off
	if _, err := v.Verify(t.Context(), stranger); !errors.Is(err, notify.ErrUnauthenticated) {
		t.Fatalf("issuer back: err = %v, want unauthenticated", err)
	}
}

// TestKeysCutMidBodyAreUnavailability: a key fetch whose answer is 200
// but whose body breaks off (an issuer that crashed while answering, a
// timeout while reading under load) is the issuer's failure, not a bad
// token: unavailable (503, try again), never unauthenticated (401, which
// tells a browser to sign in again).
func TestKeysCutMidBodyAreUnavailability(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)
	v, clock := newVerifier(t, ti, nil)
	raw, _ := ti.Token("alice", []string{"USER"}, time.Hour)
	if err := v.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	ti.cutKeys.Store(true)
	wantUnavailableFor(t, v, raw)
	ti.cutKeys.Store(false)
	clock.Advance(time.Minute) // past any back-off of the failed fetch
	if id, err := v.Verify(t.Context(), raw); err != nil || id.UserID != "alice" {
		t.Fatalf("keys whole again: %+v, %v", id, err)
	}
}

func wantUnavailableFor(t *testing.T, v *auth.Verifier, raw string) {
	t.Helper()
	if _, err := v.Verify(t.Context(), raw); !errors.Is(err, notify.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
}

func TestIssuerNotListening(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	v, err := auth.NewVerifier(auth.Config{IssuerURL: "http://" + l.Addr().String(), Audience: "a"})
	if err != nil {
		t.Fatalf("NewVerifier must not contact the issuer: %v", err)
	}
	if err := v.Discover(t.Context()); !errors.Is(err, notify.ErrUnavailable) {
		t.Fatalf("Discover: %v, want unavailable", err)
	}
}

func TestVerifyCancelled(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)
	v, _ := newVerifier(t, ti, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	raw, _ := ti.Token("alice", nil, time.Hour)
	if _, err := v.Verify(ctx, raw); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The caller's cancellation says nothing about the issuer: no back-off.
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatalf("next Verify: %v", err)
	}
}
