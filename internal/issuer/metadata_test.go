package issuer_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/notifyd/notifyd/internal/issuer"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", "/dev-issuer", "/dev-issuer/", "/a/b"} {
		t.Run("path="+path, func(t *testing.T) {
			t.Parallel()
			f := setup(t, path, nil)
			base := strings.TrimSuffix(f.iss.URL(), "/")
			resp, body := f.get(t, base+"/.well-known/openid-configuration")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %s", resp.Status, body)
			}
			var doc struct {
				Issuer        string   `json:"issuer"`
				Authorization string   `json:"authorization_endpoint"`
				Token         string   `json:"token_endpoint"`
				JWKS          string   `json:"jwks_uri"`
				ResponseTypes []string `json:"response_types_supported"`
				Subjects      []string `json:"subject_types_supported"`
				Algs          []string `json:"id_token_signing_alg_values_supported"`
				PKCE          []string `json:"code_challenge_methods_supported"`
				Scopes        []string `json:"scopes_supported"`
			}
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Issuer != f.iss.URL() || doc.Authorization != base+"/authorize" ||
				doc.Token != base+"/token" || doc.JWKS != base+"/jwks" {
				t.Errorf("endpoints %+v for issuer %s", doc, f.iss.URL())
			}
			if !slices.Equal(doc.ResponseTypes, []string{"code"}) || !slices.Equal(doc.Algs, []string{"RS256"}) ||
				!slices.Equal(doc.PKCE, []string{"S256"}) || len(doc.Subjects) == 0 || !slices.Contains(doc.Scopes, "openid") {
				t.Errorf("capabilities %+v", doc)
			}
			// go-oidc insists that the document's issuer equals the URL exactly.
			if _, err := oidc.NewProvider(oidc.ClientContext(t.Context(), f.client), f.iss.URL()); err != nil {
				t.Errorf("go-oidc discovery: %v", err)
			}
		})
	}
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := setup(t, "/dev-issuer", func(c *issuer.Config) { c.Key = key })
	keys := f.jwks(t)
	if len(keys.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(keys.Keys))
	}
	k := keys.Keys[0]
	if !k.IsPublic() || k.Algorithm != "RS256" || k.Use != "sig" || k.KeyID == "" {
		t.Errorf("key %+v", k)
	}
	if pub, ok := k.Key.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		t.Errorf("published key %T is not the configured key", k.Key)
	}
	// The default key id is derived from the key, so a persisted key keeps it.
	again := setup(t, "", func(c *issuer.Config) { c.Key = key })
	if id := again.jwks(t).Keys[0].KeyID; id != k.KeyID {
		t.Errorf("key id %q then %q for the same key", k.KeyID, id)
	}
}

func (f fixture) jwks(t *testing.T) jose.JSONWebKeySet {
	t.Helper()
	resp, body := f.get(t, f.iss.JWKSURL())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET jwks: %s", resp.Status)
	}
	var keys jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &keys); err != nil {
		t.Fatalf("decode jwks: %v", err)
	}
	return keys
}
