package auth

import (
	"context"
	"crypto/subtle"
	"fmt"

	"golang.org/x/oauth2"
)

// Endpoint returns the issuer's authorization and token endpoints, for the
// browser sign-in (authorization code flow). It discovers the issuer if that
// has not happened yet.
func (v *Verifier) Endpoint(ctx context.Context) (oauth2.Endpoint, error) {
	if err := v.discover(ctx); err != nil {
		return oauth2.Endpoint{}, err
	}
	return v.provider.Load().Endpoint(), nil
}

// ExchangeContext returns ctx carrying the verifier's HTTP client, so the
// oauth2 code exchange uses the same client (timeouts, transport) as
// discovery and key fetches.
func (v *Verifier) ExchangeContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, v.client)
}

// VerifyIDToken checks an ID token received at the end of the code flow:
// everything Verify checks, and that its nonce is the one this sign-in sent.
// It returns the person with their display name, which the session keeps for
// the page.
func (v *Verifier) VerifyIDToken(ctx context.Context, rawIDToken, nonce string) (Person, error) {
	if rawIDToken == "" {
		return Person{}, reject("the token response has no id_token")
	}
	idv, err := v.verifier(ctx)
	if err != nil {
		return Person{}, fmt.Errorf("verify id token: %w", err)
	}
	tok, err := idv.Verify(ctx, rawIDToken)
	if err != nil {
		return Person{}, v.explain(ctx, rawIDToken, err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return Person{}, reject("wrong nonce")
	}
	return v.person(tok)
}
