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
// is discovered on the first Verify, and a JWKSURL's keys are fetched then.
func NewVerifier(cfg Config) (*Verifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("auth config: %w", err)
	}
	v := &Verifier{cfg: cfg, discovering: make(chan struct{}, 1)}
	client := *cfg.HTTPClient
	client.Transport = &keyWatch{base: cmpTransport(client.Transport), failing: &v.keysFailing}
	v.client = &client
	if cfg.JWKSURL != "" {
		v.oidc.Store(v.keySetVerifier())
	}
	return v, nil
}

// keySetVerifier verifies against cfg.JWKSURL without discovery, checking
// "iss" and "aud" only where they are configured.
func (v *Verifier) keySetVerifier() *oidc.IDTokenVerifier {
	var algs []string
	for _, a := range asymmetricAlgs() {
		algs = append(algs, string(a))
	}
	keys := newKeySet(v.cfg.JWKSURL, v.client, v.cfg)
	return oidc.NewVerifier(v.cfg.IssuerURL, keys, &oidc.Config{ClientID: v.cfg.Audience, Now: v.cfg.Clock,
		SkipClientIDCheck: v.cfg.Audience == "", SkipIssuerCheck: v.cfg.IssuerURL == "", SupportedSigningAlgs: algs})
}

// Verify checks rawToken and returns who it identifies: UserID is the
// UserClaim ("sub" by default), Roles come from the RolesClaim, ExpiresAt is
// "exp". A token that does not
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
	p, err := v.person(tok)
	return p.Identity, err
}

// Person is who a verified token names: the identity notifyd authorizes,
// and the name a page shows for it.
type Person struct {
	notify.Identity
	// Name is the NameClaim, or the user id when the token has none.
	Name string
}

// maxNameLen bounds the display name kept from a token.
const maxNameLen = 200

// person reads who a verified token identifies.
func (v *Verifier) person(tok *oidc.IDToken) (Person, error) {
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Person{}, reject("malformed claims")
	}
	if tok.Subject == "" {
		return Person{}, reject("missing subject")
	}
	user := tok.Subject
	if v.cfg.UserClaim != "sub" {
		user = stringClaim(claims, v.cfg.UserClaim)
		if user == "" {
			return Person{}, reject(fmt.Sprintf("token has no %q claim, which is the user id here (OIDC_USER_CLAIM)", v.cfg.UserClaim))
		}
	}
	name := stringClaim(claims, v.cfg.NameClaim)
	if name == "" || len(name) > maxNameLen {
		name = user
	}
	return Person{
		Identity: notify.Identity{UserID: user, Roles: RolesFromClaims(claims, v.cfg.RolesClaim), ExpiresAt: tok.Expiry},
		Name:     name,
	}, nil
}

// stringClaim is the string at path in claims (a dotted path reaches nested
// claims, as for roles), or "" when it is missing or not a string.
func stringClaim(claims map[string]any, path string) string {
	v, _ := lookup(claims, path)
	s, _ := v.(string)
	return s
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
