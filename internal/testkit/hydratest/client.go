package hydratest

import (
	"net/url"
	"strings"
	"testing"
)

// Client is an OAuth2 client to register at Hydra.
type Client struct {
	// ID and Secret: a confidential client, authenticated at the token
	// endpoint with HTTP Basic (client_secret_basic).
	ID, Secret string
	// RedirectURIs are the callbacks Hydra may send codes to.
	RedirectURIs []string
	// Scopes the client may ask for.
	Scopes []string
	// Audience the client may ask access tokens for (the authorize
	// request's "audience" parameter); each becomes the tokens' "aud".
	Audience []string
}

// RegisterClient registers c through Hydra's admin API, for the
// authorization code flow with refresh tokens. Its access tokens are JWTs
// signed with the same keys as ID tokens (Hydra's default is opaque tokens,
// which only Hydra's introspection can read).
func (p *Provider) RegisterClient(t testing.TB, c Client) {
	t.Helper()
	body := map[string]any{
		"client_id":                  c.ID,
		"client_secret":              c.Secret,
		"redirect_uris":              c.RedirectURIs,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"scope":                      strings.Join(c.Scopes, " "),
		"audience":                   c.Audience,
		"token_endpoint_auth_method": "client_secret_basic",
		"access_token_strategy":      "jwt",
	}
	if err := adminCall(p.AdminURL, "POST", "/admin/clients", body, nil); err != nil {
		t.Fatalf("register client %s: %v", c.ID, err)
	}
}

// RevokeConsent revokes every consent the user with subject gave, as an
// administrator removing a user's access does (Hydra's admin API, DELETE
// /admin/oauth2/auth/sessions/consent): the access and refresh tokens of
// those grants are revoked with them, so a refresh answers invalid_grant.
func (p *Provider) RevokeConsent(t testing.TB, subject string) {
	t.Helper()
	if err := adminCall(p.AdminURL, "DELETE", "/admin/oauth2/auth/sessions/consent?all=true&subject="+url.QueryEscape(subject), nil, nil); err != nil {
		t.Fatalf("revoke the consents of %s: %v", subject, err)
	}
}
