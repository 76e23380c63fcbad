// Package auth verifies the bearer tokens callers present, against the
// OpenID Connect issuer notifyd is configured with (OIDC_ISSUER_URL,
// OIDC_AUDIENCE, OIDC_ROLES_CLAIM), and turns them into a notify.Identity.
//
// Signature, issuer, audience and expiry are checked by go-oidc against the
// issuer's discovery document and JWKS. This package adds what go-oidc leaves
// to its callers: lazy discovery, because the embedded development issuer is
// served by the very process that verifies and is not listening yet when the
// verifier is built; roles read from wherever each provider puts them; and
// errors that speak notify's sentinels with a reason safe to show a caller.
package auth

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Config configures a Verifier.
type Config struct {
	// IssuerURL is the OpenID Connect issuer. Its discovery document must name
	// exactly this URL as "issuer", and tokens must carry it as "iss".
	// Required.
	IssuerURL string
	// Audience is the expected "aud", normally the client id. Required.
	Audience string
	// RolesClaim names the claim holding the caller's roles; a dotted path
	// reaches nested claims (see RolesFromClaims). Default: "roles".
	RolesClaim string
	// HTTPClient fetches the discovery document and the keys. Default: a
	// client with a 10s timeout, so a hung issuer cannot hang requests.
	HTTPClient *http.Client
	// Logger records discovery and rejected tokens (the reason, never the
	// token). Default: discards.
	Logger *slog.Logger
	// Clock tells the time for expiry checks, discovery retries and the key
	// refetch cooldown. Default: time.Now.
	Clock func() time.Time
	// KeyRefetchCooldown is the least time between two fetches of the
	// issuer's JWKS caused by tokens whose key the cached set does not hold.
	// In between, such tokens are refused at once without asking the issuer,
	// so made-up key ids cannot turn callers into a flood on the identity
	// provider; a rotated-in key is picked up by the first token after it.
	// Default: 30s.
	KeyRefetchCooldown time.Duration
}

// WithDefaults returns a copy of c with every unset optional field defaulted.
func (c Config) WithDefaults() Config {
	c.RolesClaim = cmp.Or(c.RolesClaim, "roles")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	c.KeyRefetchCooldown = cmp.Or(c.KeyRefetchCooldown, 30*time.Second)
	return c
}

func (c Config) validate() error {
	if c.IssuerURL == "" {
		return errors.New("IssuerURL is required")
	}
	u, err := url.Parse(c.IssuerURL)
	if err != nil {
		return fmt.Errorf("IssuerURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("IssuerURL %q: want an absolute http or https URL", c.IssuerURL)
	}
	if c.Audience == "" {
		return errors.New("Audience is required")
	}
	if c.KeyRefetchCooldown < 0 {
		return fmt.Errorf("KeyRefetchCooldown %v: must not be negative", c.KeyRefetchCooldown)
	}
	if len(c.RolesClaim) > maxPathLen {
		return fmt.Errorf("RolesClaim: longer than %d bytes", maxPathLen)
	}
	return nil
}
