package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds the key set document; real ones are a few kilobytes.
const maxJWKSBytes = 1 << 20

// errNoMatchingKey is a signature no cached key verifies while a refetch is
// not allowed yet; explain turns it into "bad signature".
var errNoMatchingKey = errors.New("no cached key verifies the signature and the key set was fetched recently")

// keySet is the issuer's JWKS, cached, with a refetch cooldown.
//
// go-oidc's RemoteKeySet refetches the whole set for every token whose key
// id it does not know, as OpenID Connect Core 10.1 suggests for rotation. That
// lets anyone without a token make notifyd fetch from the identity provider
// once per request, just by making up key ids. keySet verifies against the
// cached keys and refetches on a miss at most once per cooldown; in between, a
// miss is answered at once with no network I/O. A rotated-in key is still
// picked up: by the first token carrying it once the cooldown has passed.
// Misses that arrive while a fetch is under way share it. A failed fetch keeps
// the keys already known and is retried after a back-off (1s doubling, never
// longer than the cooldown), so a first fetch that fails while the issuer is
// still starting does not lock verification out for the whole cooldown.
type keySet struct {
	url      string
	client   *http.Client
	clock    func() time.Time
	cooldown time.Duration

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	nextFetch time.Time     // no fetch before this
	backoff   time.Duration // after consecutive failures
	inflight  *keyFetch     // the fetch under way, if any
}

var _ oidc.KeySet = (*keySet)(nil)

// keyFetch is one fetch that several misses wait for.
type keyFetch struct {
	done chan struct{} // closed when keys and err are set
	keys []jose.JSONWebKey
	err  error
}

func newKeySet(url string, client *http.Client, cfg Config) *keySet {
	return &keySet{url: url, client: client, clock: cfg.Clock, cooldown: cfg.KeyRefetchCooldown}
}

// VerifySignature returns jwt's payload if a key of the set verifies it. The
// IDTokenVerifier has already checked the algorithm.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, asymmetricAlgs())
	if err != nil {
		return nil, fmt.Errorf("parse jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("parse jwt: want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	cached := k.keys
	k.mu.Unlock()
	if payload, ok := verifyWith(jws, kid, cached); ok {
		return payload, nil
	}
	// The keys refresh gives are tried even with its error: a miss that
	// read the cache just before another miss's fetch brought the token's
	// key finds the cooldown started, and the key there.
	fresh, err := k.refresh(ctx)
	if !sameKeys(fresh, cached) {
		if payload, ok := verifyWith(jws, kid, fresh); ok {
			return payload, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return nil, errors.New("no key of the issuer verifies the signature")
}

// sameKeys reports whether a and b are the same list of keys, as the set
// hands out (it replaces its list on a fetch, never edits it).
func sameKeys(a, b []jose.JSONWebKey) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// verifyWith tries the keys with the token's key id (all of them when the
// token names none).
func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) ([]byte, bool) {
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(&key); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// refresh fetches the key set, or joins the fetch under way, and returns the
// keys. Within the cooldown it returns the keys it has and errNoMatchingKey
// at once.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	f := k.inflight
	if f == nil {
		now := k.clock()
		if now.Before(k.nextFetch) {
			keys := k.keys
			k.mu.Unlock()
			return keys, errNoMatchingKey
		}
		k.nextFetch = now.Add(k.cooldown)
		f = &keyFetch{done: make(chan struct{})}
		k.inflight = f
		// Detached from ctx: the misses waiting for it are not only this
		// caller's, and the HTTP client's timeout bounds it.
		go k.fetch(context.WithoutCancel(ctx), f, now)
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.keys, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch keys: %w", ctx.Err())
	}
}

// fetch downloads the set, records the outcome and wakes the waiters.
func (k *keySet) fetch(ctx context.Context, f *keyFetch, started time.Time) {
	keys, err := k.download(ctx)
	k.mu.Lock()
	if err == nil {
		k.keys, k.backoff = keys, 0
	} else {
		keys = k.keys // what is known still verifies
		k.backoff = min(max(2*k.backoff, minRetry), k.cooldown)
		k.nextFetch = started.Add(k.backoff)
	}
	k.inflight = nil
	f.keys, f.err = keys, err
	k.mu.Unlock()
	close(f.done)
}

// download fetches and parses the JWKS document.
func (k *keySet) download(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch keys: %w", err)
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("fetch keys: read: %w", err)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("fetch keys: %s", resp.Status)
	case len(body) > maxJWKSBytes:
		return nil, fmt.Errorf("fetch keys: document larger than %d bytes", maxJWKSBytes)
	}
	keys, err := parseKeys(body)
	if err != nil {
		return nil, fmt.Errorf("fetch keys: %w", err)
	}
	return keys, nil
}

// parseKeys reads a JWKS document, keeping the public signature keys it can
// use and skipping the rest (unknown algorithms or key types, symmetric or
// encryption keys) as RFC 7517 section 5 asks, rather than failing the set.
func parseKeys(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(raw, &key); err != nil {
			continue
		}
		if key.Algorithm != "" && !slices.Contains(asymmetricAlgs(), jose.SignatureAlgorithm(key.Algorithm)) {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		switch key.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, key)
		}
	}
	return keys, nil
}
