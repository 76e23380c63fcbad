package auth_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/notify"
)

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)
	v, _ := newVerifier(t, ti, nil)
	raw, err := ti.Token("alice", []string{"ADMIN", "USER", "ADMIN"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.UserID != "alice" || !slices.Equal(id.Roles, []string{"ADMIN", "USER"}) ||
		id.ExpiresAt.Sub(time.Now().Add(time.Hour)).Abs() > time.Minute {
		t.Errorf("identity %+v", id)
	}
	// A list audience that includes ours is fine too.
	claims := ti.claims("bob")
	claims["aud"] = []string{"other", ti.ClientID()}
	if id, err := v.Verify(t.Context(), ti.sign(t, claims)); err != nil || id.UserID != "bob" {
		t.Errorf("multi-audience token: %+v, %v", id, err)
	}
}

func TestVerifyRolesClaim(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)
	v, _ := newVerifier(t, ti, func(c *auth.Config) { c.RolesClaim = "realm_access.roles" })
	claims := ti.claims("kc-user")
	claims["realm_access"] = map[string]any{"roles": []string{"offline_access", "ADMIN"}}
	id, err := v.Verify(t.Context(), ti.sign(t, claims))
	if err != nil || !slices.Equal(id.Roles, []string{"offline_access", "ADMIN"}) {
		t.Fatalf("identity %+v, %v", id, err)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, func(c *issuer.Config) { c.KeyID = "k1" })
	v, _ := newVerifier(t, ti, nil)
	impostor := startIssuer(t, func(c *issuer.Config) { c.URL, c.KeyID = ti.URL(), "k1" })
	stranger := startIssuer(t, func(c *issuer.Config) { c.URL = ti.URL() }) // own key id
	with := func(k string, val any) string {
		c := ti.claims("alice")
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return ti.sign(t, c)
	}
	tests := []struct {
		name, token, reason string
	}{
		{"empty", "", "missing token"},
		{"too large", strings.Repeat("a", 17<<10), "token too large"},
		{"garbage", "not a token", "malformed token"},
		{"garbage segments", "abc.def.ghi", "malformed token"},
		{"expired", with("exp", time.Now().Add(-time.Minute).Unix()), "token expired"},
		{"no expiry", with("exp", nil), "token expired"},
		{"not yet valid", with("nbf", time.Now().Add(time.Hour).Unix()), "token not yet valid"},
		{"wrong audience", with("aud", "someone-else"), "wrong audience"},
		{"no audience", with("aud", nil), "wrong audience"},
		{"wrong issuer", with("iss", "https://evil.example"), "wrong issuer"},
		{"missing sub", with("sub", nil), "missing subject"},
		{"signed by another key, same kid", impostor.sign(t, ti.claims("alice")), "bad signature"},
		{"signed by another key", stranger.sign(t, ti.claims("alice")), "bad signature"},
		{"alg none", unsigned(t, `{"alg":"none","typ":"JWT"}`, ti.claims("alice")), "unsupported algorithm"},
		{"HS256 with the public key", hmacSigned(t, ti, ti.claims("alice")), "unsupported algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.token)
			rejected, ok := errors.AsType[*auth.RejectedError](err)
			if !ok || !errors.Is(err, notify.ErrUnauthenticated) || errors.Is(err, notify.ErrUnavailable) {
				t.Fatalf("err = %v, want a rejection", err)
			}
			if rejected.Reason != tt.reason {
				t.Errorf("reason %q, want %q", rejected.Reason, tt.reason)
			}
			if len(tt.token) > 20 && strings.Contains(err.Error(), tt.token[len(tt.token)-20:]) {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
}

// unsigned is a JWT with the given header and an empty signature.
func unsigned(t *testing.T, header string, claims map[string]any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(body) + "."
}

// hmacSigned is the classic algorithm-confusion attack: HS256 with the
// issuer's public key (as published in its JWKS) as the HMAC secret.
func hmacSigned(t *testing.T, ti *testIssuer, claims map[string]any) string {
	t.Helper()
	return signJWT(t, jose.SigningKey{Algorithm: jose.HS256, Key: ti.PublicKey().N.Bytes()}, nil, claims)
}
