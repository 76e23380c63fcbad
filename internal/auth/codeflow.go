package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"

	"golang.org/x/oauth2"
)

// Endpoint returns the issuer's authorization and token endpoints, for the
// browser sign-in (authorization code flow) and session refreshes. It
// discovers the issuer if that has not happened yet.
//
// The client authenticates at the token endpoint as the discovery document
// says it may (token_endpoint_auth_methods_supported; client_secret_basic
// when it says nothing, as the specification has it), never by trial:
// oauth2's auto-detection sends a refused request again the other way, and
// a refresh token the issuer refused (invalid_grant) would then be reported
// as the second attempt's invalid_client, which says nothing about the
// session.
func (v *Verifier) Endpoint(ctx context.Context) (oauth2.Endpoint, error) {
	if err := v.discover(ctx); err != nil {
		return oauth2.Endpoint{}, err
	}
	p := v.provider.Load()
	ep := p.Endpoint()
	var meta struct {
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	_ = p.Claims(&meta) // parsed already at discovery
	switch {
	case len(meta.AuthMethods) == 0 || slices.Contains(meta.AuthMethods, "client_secret_basic"):
		ep.AuthStyle = oauth2.AuthStyleInHeader
	case slices.Contains(meta.AuthMethods, "client_secret_post"):
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return ep, nil
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

// VerifyRefreshedIDToken checks an ID token the issuer returned for a
// refresh token: everything VerifyIDToken checks but the nonce, which
// belongs to the sign-in (OpenID Connect Core 12.2: a refreshed ID token
// need not carry one), with the same claim mapping (UserClaim, RolesClaim),
// so the refreshed session's user and roles are what a sign-in now would
// give. The caller checks that the user is the session's. Errors as for
// Verify: notify.ErrUnauthenticated (a *RejectedError) when the token is
// refused, notify.ErrUnavailable when the issuer's keys are out of reach.
func (v *Verifier) VerifyRefreshedIDToken(ctx context.Context, rawIDToken string) (Person, error) {
	if rawIDToken == "" {
		return Person{}, reject("the refresh response has no id_token")
	}
	idv, err := v.verifier(ctx)
	if err != nil {
		return Person{}, fmt.Errorf("verify refreshed id token: %w", err)
	}
	tok, err := idv.Verify(ctx, rawIDToken)
	if err != nil {
		return Person{}, v.explain(ctx, rawIDToken, err)
	}
	return v.person(tok)
}
