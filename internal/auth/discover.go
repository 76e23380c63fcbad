package auth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/notifyd/notifyd/internal/notify"
)

// After a failed discovery, callers are answered from the failure until the
// back-off passes, so an issuer that is down is not asked on every request
// and requests do not each wait for a timeout. It starts short because the
// usual cause is an issuer (or notifyd itself) still starting.
const (
	minRetry = time.Second
	maxRetry = 30 * time.Second
)

// Discover fetches the issuer's discovery document unless that is already
// done. Verify calls it; a readiness check may too. A failure wraps
// notify.ErrUnavailable.
func (v *Verifier) Discover(ctx context.Context) error {
	if v.cfg.IssuerURL == "" {
		return nil // a JWKSURL alone: nothing to discover
	}
	return v.discover(ctx)
}

// verifier returns the go-oidc verifier, discovering the issuer on first use
// (with a JWKSURL it is there from the start).
func (v *Verifier) verifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if idv := v.oidc.Load(); idv != nil {
		return idv, nil
	}
	if err := v.discover(ctx); err != nil {
		return nil, err
	}
	return v.oidc.Load(), nil
}

// discover fetches the issuer's discovery document, once it succeeds: it
// gives the endpoints of browser sign-in and, without a JWKSURL, the key set
// to verify with. One caller discovers at a time; the others wait or give up
// with their ctx.
func (v *Verifier) discover(ctx context.Context) error {
	if v.cfg.IssuerURL == "" {
		return fmt.Errorf("discover issuer: %w: no OIDC_ISSUER_URL to discover (only OIDC_JWKS_URL is set)", notify.ErrUnavailable)
	}
	if v.provider.Load() != nil {
		return nil
	}
	select {
	case v.discovering <- struct{}{}:
		defer func() { <-v.discovering }()
	case <-ctx.Done():
		return fmt.Errorf("discover issuer: %w", ctx.Err())
	}
	if v.provider.Load() != nil {
		return nil
	}
	now := v.cfg.Clock()
	if now.Before(v.retryAt) {
		return fmt.Errorf("discover issuer: %w: retrying in %v: %w",
			notify.ErrUnavailable, v.retryAt.Sub(now).Round(time.Millisecond), v.lastErr)
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.cfg.IssuerURL)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up; that says nothing about the issuer.
			return fmt.Errorf("discover issuer: %w", ctx.Err())
		}
		v.backoff = min(max(2*v.backoff, minRetry), maxRetry)
		v.retryAt, v.lastErr = now.Add(v.backoff), err
		v.cfg.Logger.WarnContext(ctx, "oidc discovery failed",
			"issuer", v.cfg.IssuerURL, "error", err, "retry_in", v.backoff)
		return fmt.Errorf("discover issuer: %w: %w", notify.ErrUnavailable, err)
	}
	var meta struct {
		JWKSURL string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURL == "" {
		// go-oidc has parsed the same document, so this does not happen.
		return fmt.Errorf("discover issuer: %w: the discovery document has no jwks_uri", notify.ErrUnavailable)
	}
	if v.oidc.Load() == nil {
		// Our own key set, not go-oidc's RemoteKeySet: see keySet for why.
		keys := newKeySet(meta.JWKSURL, v.client, v.cfg)
		v.oidc.Store(oidc.NewVerifier(v.cfg.IssuerURL, keys, &oidc.Config{ClientID: v.cfg.Audience, Now: v.cfg.Clock,
			SupportedSigningAlgs: signingAlgs(meta.Algs)}))
	}
	v.provider.Store(provider)
	v.cfg.Logger.InfoContext(ctx, "oidc issuer discovered", "issuer", v.cfg.IssuerURL)
	return nil
}

// signingAlgs are the algorithms the issuer says it signs with that we can
// verify, as go-oidc's Provider.Verifier picks them; none leaves go-oidc's
// default, RS256.
func signingAlgs(advertised []string) []string {
	var algs []string
	for _, a := range advertised {
		if slices.Contains(asymmetricAlgs(), jose.SignatureAlgorithm(a)) {
			algs = append(algs, a)
		}
	}
	return algs
}

// keyWatch records whether the issuer's last answer, to discovery or to a key
// fetch, was a failure: no response, not 200, or a body that broke off
// (the issuer crashed while answering, or reading it timed out under load:
// go-oidc then has no keys, and without this the token would be called
// badly signed, a 401 that tells a browser to sign in again).
type keyWatch struct {
	base    http.RoundTripper
	failing *atomic.Bool
}

// watchedBody marks the issuer failing when its body cannot be read to the end.
type watchedBody struct {
	io.ReadCloser
	failing *atomic.Bool
}

func (b watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.failing.Store(true)
	}
	return n, err
}

func (k *keyWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := k.base.RoundTrip(req)
	k.failing.Store(err != nil || resp.StatusCode != http.StatusOK)
	if err == nil {
		resp.Body = watchedBody{ReadCloser: resp.Body, failing: k.failing}
	}
	return resp, err
}

func cmpTransport(t http.RoundTripper) http.RoundTripper {
	if t == nil {
		return http.DefaultTransport
	}
	return t
}
