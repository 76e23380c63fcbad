package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit"
)

// rotatingIssuer is a minimal OpenID Connect issuer on a real HTTP server
// whose published key set a test can change, and which counts how often
// its JWKS is fetched. It signs ES256, so the test also pins that the
// algorithms come from the discovery document.
type rotatingIssuer struct {
	url     string
	fetches atomic.Int64

	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey // by kid; all published
}

func startRotatingIssuer(t *testing.T) *rotatingIssuer {
	t.Helper()
	ri := &rotatingIssuer{keys: map[string]*ecdsa.PrivateKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, map[string]any{
			"issuer": ri.url, "jwks_uri": ri.url + "/jwks",
			"authorization_endpoint": ri.url + "/authorize", "token_endpoint": ri.url + "/token",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		ri.fetches.Add(1)
		ri.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range ri.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		ri.mu.Unlock()
		writeTestJSON(w, set)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ri.url = srv.URL
	return ri
}

// addKey publishes a new key under kid.
func (ri *rotatingIssuer) addKey(t *testing.T, kid string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ri.mu.Lock()
	defer ri.mu.Unlock()
	ri.keys[kid] = k
}

// token signs valid claims for sub with the key published as kid, or with a
// fresh unpublished key when kid is not published.
func (ri *rotatingIssuer) token(t *testing.T, kid, sub string) string {
	t.Helper()
	ri.mu.Lock()
	k := ri.keys[kid]
	ri.mu.Unlock()
	if k == nil {
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	return signJWT(t, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"), map[string]any{"iss": ri.url, "aud": "notifyd-test", "sub": sub,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
}

func writeTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// TestUnknownKeyIDsDoNotHammerTheIssuer: go-oidc refetches the JWKS for
// every token whose kid it does not know, so unauthenticated callers could
// make notifyd hammer the identity provider. The key set refetches at most
// once per cooldown, still picks up a real rotation, and keeps verifying
// the known key without fetching.
func TestUnknownKeyIDsDoNotHammerTheIssuer(t *testing.T) {
	t.Parallel()
	ri := startRotatingIssuer(t)
	ri.addKey(t, "k1")
	clock := testkit.NewClock(time.Now())
	v, err := auth.NewVerifier(auth.Config{IssuerURL: ri.url, Audience: "notifyd-test",
		Logger: testLogger(t), Clock: clock.Now, KeyRefetchCooldown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	wantUser := func(raw, sub string) {
		t.Helper()
		if id, err := v.Verify(t.Context(), raw); err != nil || id.UserID != sub {
			t.Fatalf("Verify: %+v, %v; want %s", id, err, sub)
		}
	}
	wantRejected := func(raw string) {
		t.Helper()
		if _, err := v.Verify(t.Context(), raw); !errors.Is(err, notify.ErrUnauthenticated) || errors.Is(err, notify.ErrUnavailable) {
			t.Errorf("Verify: %v, want a rejection", err)
		}
	}
	known := ri.token(t, "k1", "alice")
	wantUser(known, "alice")
	if n := ri.fetches.Load(); n != 1 {
		t.Fatalf("%d key fetches after the first token, want 1", n)
	}

	t.Run("200 unknown kids fetch at most once", func(t *testing.T) {
		tokens := make([]string, 200)
		for i := range tokens {
			tokens[i] = ri.token(t, fmt.Sprintf("random-%d-%d", i, time.Now().UnixNano()), "mallory")
		}
		clock.Advance(2 * time.Minute) // the first miss may fetch: the cooldown has passed
		before := ri.fetches.Load()
		var wg sync.WaitGroup
		for g := range 10 {
			wg.Go(func() {
				for _, raw := range tokens[g*20 : (g+1)*20] {
					wantRejected(raw)
				}
			})
		}
		wg.Wait()
		if n := ri.fetches.Load() - before; n > 1 {
			t.Errorf("%d key fetches for 200 tokens with unknown kids, want at most 1", n)
		}
	})

	t.Run("the known key keeps verifying without a fetch", func(t *testing.T) {
		before := ri.fetches.Load()
		for range 20 {
			wantUser(known, "alice")
		}
		if n := ri.fetches.Load() - before; n != 0 {
			t.Errorf("%d key fetches for a known key, want 0", n)
		}
	})

	t.Run("a rotated-in key verifies once the cooldown has passed", func(t *testing.T) {
		ri.addKey(t, "k2")
		rotated := ri.token(t, "k2", "bob")
		before := ri.fetches.Load()
		wantRejected(rotated) // within the cooldown: no network I/O
		if n := ri.fetches.Load() - before; n != 0 {
			t.Fatalf("%d key fetches within the cooldown, want 0", n)
		}
		clock.Advance(time.Minute)
		wantUser(rotated, "bob")
		wantUser(known, "alice")
		if n := ri.fetches.Load() - before; n != 1 {
			t.Errorf("%d key fetches to pick up the rotation, want 1", n)
		}
	})

	t.Run("concurrent misses share one fetch", func(t *testing.T) {
		ri.addKey(t, "k3")
		rotated := ri.token(t, "k3", "carol")
		clock.Advance(time.Minute)
		before := ri.fetches.Load()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() { wantUser(rotated, "carol") })
		}
		wg.Wait()
		if n := ri.fetches.Load() - before; n != 1 {
			t.Errorf("%d key fetches for 50 concurrent tokens with a new kid, want 1", n)
		}
	})
}
