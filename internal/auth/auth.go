// Package auth verifies the bearer tokens callers present, against the
// OpenID Connect issuer notifyd is configured with (OIDC_ISSUER_URL,
// OIDC_AUDIENCE, OIDC_ROLES_CLAIM, OIDC_USER_CLAIM), or against a key set
// named directly (OIDC_JWKS_URL), and turns them into a notify.Identity.
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
	// Required unless JWKSURL is set; then optional, and checked when set.
	IssuerURL string
	// Audience is the expected "aud", normally the client id. Required
	// unless JWKSURL is set; then optional, and checked when set.
	Audience string
	// JWKSURL is a key set to verify tokens against without discovery
	// (OIDC_JWKS_URL): for an application with its own sign-in that mints
	// short-lived stream tokens for its users. Only asymmetric keys and
	// algorithms count (RS*, PS*, ES*, EdDSA): a shared secret (HS*) would
	// let whoever can verify also mint. The refetch cooldown applies as for
	// a discovered set. Browser sign-in still needs IssuerURL's discovery.
	JWKSURL string
	// RolesClaim names the claim holding the caller's roles; a dotted path
	// reaches nested claims (see RolesFromClaims). Default: "roles".
	RolesClaim string
	// UserClaim names the claim that is the user id notifications target
	// (OIDC_USER_CLAIM): "sub" is opaque at many providers (Dex, Azure AD),
	// so "preferred_username" or "email" is often what senders know. A
	// dotted path reaches nested claims. A token without it (or with a
	// non-string or empty value) is refused. Default: "sub".
	UserClaim string
	// NameClaim names the claim shown as the user's name on the page
	// (OIDC_NAME_CLAIM); when a token lacks it the user id is shown.
	// Default: "name".
	NameClaim string
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
	c.UserClaim = cmp.Or(c.UserClaim, "sub")
	c.NameClaim = cmp.Or(c.NameClaim, "name")
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
	if c.JWKSURL != "" {
		if err := absoluteURL(c.JWKSURL); err != nil {
			return fmt.Errorf("JWKSURL: %w", err)
		}
	} else if c.IssuerURL == "" {
		return errors.New("IssuerURL (or JWKSURL) is required")
	}
	if c.IssuerURL != "" {
		if err := absoluteURL(c.IssuerURL); err != nil {
			return fmt.Errorf("IssuerURL: %w", err)
		}
	}
	if c.Audience == "" && c.JWKSURL == "" {
		return errors.New("Audience is required")
	}
	if c.KeyRefetchCooldown < 0 {
		return fmt.Errorf("KeyRefetchCooldown %v: must not be negative", c.KeyRefetchCooldown)
	}
	for name, claim := range map[string]string{"RolesClaim": c.RolesClaim, "UserClaim": c.UserClaim, "NameClaim": c.NameClaim} {
		if len(claim) > maxPathLen {
			return fmt.Errorf("%s: longer than %d bytes", name, maxPathLen)
		}
	}
	return nil
}

// absoluteURL checks that s is an absolute http or https URL.
func absoluteURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http or https URL", s)
	}
	return nil
}
