package auth_test

import (
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// signJWT signs claims with key as a compact JWS, opts as jose.NewSigner
// takes them (nil for a header with the algorithm and nothing else).
func signJWT(t *testing.T, key jose.SigningKey, opts *jose.SignerOptions, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatalf("new %s signer: %v", key.Algorithm, err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("encode claims: %v", err)
	}
	jws, err := signer.Sign(body)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return raw
}
