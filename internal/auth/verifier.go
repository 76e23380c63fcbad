package auth

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/notifyd/notifyd/internal/notify"
)

// maxTokenBytes bounds the work an absurd token can cause; real ones are a
// few kilobytes at most.
const maxTokenBytes = 16 << 10

// Verifier checks bearer tokens. It is safe for concurrent use; build one per
// process and share it, since it caches the issuer's metadata and keys.
type Verifier struct {
	cfg    Config
	client *http.Client // cfg.HTTPClient, watched by keyWatch

	// keysFailing is true while the issuer's last answer was a failure. It
	// tells "the keys could not be fetched" from "no key matches", which
	// go-oidc reports alike.
	keysFailing atomic.Bool

	oidc     atomic.Pointer[oidc.IDTokenVerifier] // set once discovery succeeds
	provider atomic.Pointer[oidc.Provider]        // set with oidc

	discovering chan struct{} // a one-slot lock that a cancelled caller can give up on
	retryAt     time.Time     // guarded by discovering
	backoff     time.Duration // guarded by discovering
	lastErr     error         // guarded by discovering
}

// NewVerifier checks cfg and returns a verifier. It does no I/O: the issuer
// is discovered on the first Verify.
func NewVerifier(cfg Config) (*Verifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("auth config: %w", err)
	}
	v := &Verifier{cfg: cfg, discovering: make(chan struct{}, 1)}
	client := *cfg.HTTPClient
	client.Transport = &keyWatch{base: cmpTransport(client.Transport), failing: &v.keysFailing}
	v.client = &client
	return v, nil
}

// Verify checks rawToken and returns who it identifies: UserID is "sub",
// Roles come from the RolesClaim, ExpiresAt is "exp". A token that does not
// verify gives an error wrapping notify.ErrUnauthenticated (and a
// *RejectedError saying why); an issuer that cannot be reached gives one
// wrapping notify.ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (notify.Identity, error) {
	switch {
	case rawToken == "":
		return notify.Identity{}, reject("missing token")
	case len(rawToken) > maxTokenBytes:
		return notify.Identity{}, reject("token too large")
	}
	idv, err := v.verifier(ctx)
	if err != nil {
		return notify.Identity{}, fmt.Errorf("verify token: %w", err)
	}
	tok, err := idv.Verify(ctx, rawToken)
	if err != nil {
		return notify.Identity{}, v.explain(ctx, rawToken, err)
	}
	return v.identity(tok)
}

// identity reads who a verified token identifies.
func (v *Verifier) identity(tok *oidc.IDToken) (notify.Identity, error) {
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return notify.Identity{}, reject("malformed claims")
	}
	if tok.Subject == "" {
		return notify.Identity{}, reject("missing subject")
	}
	return notify.Identity{
		UserID:    tok.Subject,
		Roles:     RolesFromClaims(claims, v.cfg.RolesClaim),
		ExpiresAt: tok.Expiry,
	}, nil
}

// RejectedError is why a token was refused. Reason is short and safe to show
// the caller ("token expired", "wrong audience"); it never quotes the token.
type RejectedError struct {
	Reason string
}

func (e *RejectedError) Error() string { return notify.ErrUnauthenticated.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, notify.ErrUnauthenticated) hold.
func (e *RejectedError) Unwrap() error { return notify.ErrUnauthenticated }

func reject(reason string) error {
	return fmt.Errorf("verify token: %w", &RejectedError{Reason: reason})
}
