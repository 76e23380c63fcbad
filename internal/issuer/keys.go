package issuer

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
)

// MarshalKey encodes key as a PKCS#8 "PRIVATE KEY" PEM block, the form
// ParseKey reads back. notifyd stores the development key this way so that
// the server and `notifyd dev-token` sign with the same key. It returns nil for
// a nil or malformed key, which ParseKey then rejects.
func MarshalKey(key *rsa.PrivateKey) []byte {
	if key == nil {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ParseKey decodes an RSA private key from PEM, as written by MarshalKey
// (PKCS#8) or by `openssl genrsa` (PKCS#1 "RSA PRIVATE KEY").
func ParseKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse issuer key: no PEM block found")
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse issuer key: %w", err)
		}
		rsaKey, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse issuer key: %T is not an RSA key", key)
		}
		return rsaKey, nil
	case "RSA PRIVATE KEY":
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse issuer key: %w", err)
		}
		return key, nil
	default:
		return nil, fmt.Errorf("parse issuer key: unexpected PEM block %q", block.Type)
	}
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of key's public half, the
// default key id: stable for a persisted key, new for a generated one.
func thumbprint(key *rsa.PrivateKey) (string, error) {
	jwk := jose.JSONWebKey{Key: &key.PublicKey}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("issuer key id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// PublicKey returns the key the issuer's tokens verify with, the one its JWKS
// publishes.
func (i *Issuer) PublicKey() *rsa.PublicKey { return &i.cfg.Key.PublicKey }

// publicKeys is the JWKS document: the one public key, marked for RS256
// signatures only.
func (i *Issuer) publicKeys() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &i.cfg.Key.PublicKey,
		KeyID:     i.cfg.KeyID,
		Algorithm: string(jose.RS256),
		Use:       "sig",
	}}}
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	// Browsers and verifiers in other origins fetch keys too.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, i.publicKeys())
}

// NewKeyPEM generates a fresh signing key and returns it as MarshalKey
// does, for callers that store the key (the development issuer keeps its
// key in the database so every node and `notifyd dev-token` agree).
func NewKeyPEM() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return MarshalKey(k), nil
}
