package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit"
)

// appKeys is an application with its own sign-in that mints stream tokens:
// a JWKS document on a plain HTTP server, no discovery document anywhere.
type appKeys struct {
	url      string
	ec       *ecdsa.PrivateKey
	ed       ed25519.PrivateKey
	secret   []byte // published as an "oct" key, as a careless app might
	requests atomic.Int64
}

func startAppKeys(t *testing.T) *appKeys {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &appKeys{ec: ec, ed: ed, secret: []byte("0123456789abcdef0123456789abcdef")}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: ec.Public(), KeyID: "ec-1", Algorithm: string(jose.ES256), Use: "sig"},
		{Key: ed.Public(), KeyID: "ed-1", Algorithm: string(jose.EdDSA), Use: "sig"},
		{Key: k.secret, KeyID: "hs-1", Algorithm: string(jose.HS256), Use: "sig"},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.requests.Add(1)
		if r.URL.Path != "/keys" {
			http.NotFound(w, r) // no discovery: a verifier that asks for it fails
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	k.url = srv.URL
	return k
}

// mint signs claims with the key of alg.
func (k *appKeys) mint(t *testing.T, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	var key jose.JSONWebKey
	switch alg {
	case jose.ES256:
		key = jose.JSONWebKey{Key: k.ec, KeyID: "ec-1"}
	case jose.EdDSA:
		key = jose.JSONWebKey{Key: k.ed, KeyID: "ed-1"}
	case jose.HS256:
		key = jose.JSONWebKey{Key: k.secret, KeyID: "hs-1"}
	}
	return signJWT(t, jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"), claims)
}

func streamClaims(sub string, extra map[string]any) map[string]any {
	c := map[string]any{"sub": sub, "iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(), "roles": []string{"USER"}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// TestJWKSURL: OIDC_JWKS_URL verifies an application's own short-lived
// tokens against its key set, without any discovery document, with the
// issuer and audience checked only as configured, and never with a shared
// secret.
func TestJWKSURL(t *testing.T) {
	t.Parallel()
	keys := startAppKeys(t)

	t.Run("asymmetric tokens verify without discovery", func(t *testing.T) {
		v, err := auth.NewVerifier(auth.Config{JWKSURL: keys.url + "/keys", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Discover(t.Context()); err != nil {
			t.Fatalf("Discover with a key set alone: %v", err)
		}
		for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA} {
			id, err := v.Verify(t.Context(), keys.mint(t, alg, streamClaims("alice", nil)))
			if err != nil || id.UserID != "alice" || len(id.Roles) != 1 {
				t.Fatalf("%s: identity %+v, %v", alg, id, err)
			}
		}
	})

	t.Run("HS256 is refused even when the set publishes the secret", func(t *testing.T) {
		v, err := auth.NewVerifier(auth.Config{JWKSURL: keys.url + "/keys", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(t.Context(), keys.mint(t, jose.HS256, streamClaims("mallory", nil)))
		if rej, ok := errors.AsType[*auth.RejectedError](err); !ok || rej.Reason != "unsupported algorithm" {
			t.Fatalf("HS256 token: %v", err)
		}
	})

	t.Run("issuer and audience are checked when configured", func(t *testing.T) {
		v, err := auth.NewVerifier(auth.Config{JWKSURL: keys.url + "/keys", IssuerURL: "https://app.example",
			Audience: "notifyd", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		good := map[string]any{"iss": "https://app.example", "aud": "notifyd"}
		if id, err := v.Verify(t.Context(), keys.mint(t, jose.ES256, streamClaims("bob", good))); err != nil || id.UserID != "bob" {
			t.Fatalf("good token: %+v, %v", id, err)
		}
		for reason, claims := range map[string]map[string]any{
			"wrong issuer":   {"iss": "https://other.example", "aud": "notifyd"},
			"wrong audience": {"iss": "https://app.example", "aud": "someone-else"},
		} {
			_, err := v.Verify(t.Context(), keys.mint(t, jose.ES256, streamClaims("bob", claims)))
			if rej, ok := errors.AsType[*auth.RejectedError](err); !ok || rej.Reason != reason || !errors.Is(err, notify.ErrUnauthenticated) {
				t.Errorf("%s: %v", reason, err)
			}
		}
	})

	t.Run("expired tokens are refused", func(t *testing.T) {
		v, err := auth.NewVerifier(auth.Config{JWKSURL: keys.url + "/keys", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		old := streamClaims("carol", map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})
		_, err = v.Verify(t.Context(), keys.mint(t, jose.ES256, old))
		if rej, ok := errors.AsType[*auth.RejectedError](err); !ok || rej.Reason != "token expired" {
			t.Fatalf("expired: %v", err)
		}
	})

	t.Run("sign-in endpoints need an issuer", func(t *testing.T) {
		v, err := auth.NewVerifier(auth.Config{JWKSURL: keys.url + "/keys", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Endpoint(t.Context()); !errors.Is(err, notify.ErrUnavailable) {
			t.Fatalf("Endpoint without an issuer: %v", err)
		}
	})
}

// TestJWKSURLUnknownKeysDoNotHammer: made-up key ids cost the application's
// key server one fetch per cooldown, as with a discovered set.
func TestJWKSURLUnknownKeysDoNotHammer(t *testing.T) {
	t.Parallel()
	keys := startAppKeys(t)
	clock := testkit.NewClock(time.Now())
	v, err := auth.NewVerifier(auth.Config{JWKSURL: keys.url + "/keys", Logger: testLogger(t), Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), keys.mint(t, jose.ES256, streamClaims("alice", nil))); err != nil {
		t.Fatal(err)
	}
	before := keys.requests.Load()
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := &appKeys{ec: other}
	for range 50 {
		if _, err := v.Verify(t.Context(), forged.mint(t, jose.ES256, streamClaims("mallory", nil))); !errors.Is(err, notify.ErrUnauthenticated) {
			t.Fatalf("forged token: %v", err)
		}
	}
	if n := keys.requests.Load() - before; n > 1 {
		t.Fatalf("%d key set fetches for 50 tokens of an unknown key; want at most 1 per cooldown", n)
	}
}

// TestNewVerifierJWKSValidates: a key set URL must be absolute, and with
// one, issuer and audience become optional.
func TestNewVerifierJWKSValidates(t *testing.T) {
	t.Parallel()
	if _, err := auth.NewVerifier(auth.Config{JWKSURL: "/keys"}); err == nil {
		t.Fatal("relative JWKSURL accepted")
	}
	if _, err := auth.NewVerifier(auth.Config{JWKSURL: "https://app.example/keys"}); err != nil {
		t.Fatalf("JWKSURL alone: %v", err)
	}
}
