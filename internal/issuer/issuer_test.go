package issuer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/notifyd/notifyd/internal/issuer"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  issuer.Config
	}{
		{"no URL", issuer.Config{}},
		{"relative URL", issuer.Config{URL: "/dev-issuer"}},
		{"not http", issuer.Config{URL: "ftp://127.0.0.1/x"}},
		{"query", issuer.Config{URL: "http://127.0.0.1/x?a=b"}},
		{"negative TTL", issuer.Config{URL: "http://127.0.0.1", TokenTTL: -time.Second}},
		{"weak key", issuer.Config{URL: "http://127.0.0.1", Key: small}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := issuer.New(tt.cfg); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	got, err := issuer.ParseKey(issuer.MarshalKey(key))
	if err != nil || !got.Equal(key) {
		t.Fatalf("PKCS#8 round trip: %v", err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if got, err := issuer.ParseKey(pkcs1); err != nil || !got.Equal(key) {
		t.Fatalf("PKCS#1: %v", err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for name, data := range map[string][]byte{
		"empty":   nil,
		"garbage": []byte("not a key"),
		"EC key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"cert":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}),
		"bad DER": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}),
	} {
		if _, err := issuer.ParseKey(data); err == nil {
			t.Errorf("ParseKey(%s) succeeded", name)
		}
	}
	if issuer.MarshalKey(nil) != nil {
		t.Error("MarshalKey(nil) is not nil")
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	f := setup(t, "/dev-issuer", nil)
	raw, err := f.iss.Token("dave", []string{"ADMIN"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Iss, Aud, Sub string
		Iat, Exp      int64
		Roles         []string
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := f.jwks(t)
	payload, err := jws.Verify(keys.Key(jws.Signatures[0].Header.KeyID)[0].Key)
	if err != nil {
		t.Fatalf("signature does not verify with the published key: %v", err)
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now().Unix()
	if claims.Iss != f.iss.URL() || claims.Aud != issuer.DefaultClientID || claims.Sub != "dave" ||
		claims.Iat != now || claims.Exp != now+600 || !slices.Equal(claims.Roles, []string{"ADMIN"}) {
		t.Errorf("claims %+v", claims)
	}
	if _, err := f.iss.Token("", nil, time.Minute); err == nil {
		t.Error("Token accepted an empty subject")
	}
	if _, err := f.iss.Token("dave", nil, 0); err == nil {
		t.Error("Token accepted a zero ttl")
	}
}
