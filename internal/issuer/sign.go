package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// RolesClaim is the claim the issuer puts roles in; notifyd's default
// OIDC_ROLES_CLAIM.
const RolesClaim = "roles"

// Sign signs claims as an RS256 JWT with the issuer's key, as they are: it
// adds nothing and checks nothing, so tests can make expired tokens, tokens
// for other audiences or without a subject.
func (i *Issuer) Sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: i.cfg.Key, KeyID: i.cfg.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return token, nil
}

// Token signs a token for sub holding roles, valid for ttl from now: the
// claims iss, aud (the client id), sub, iat, exp and roles. It is what the
// token endpoint hands out and what `notifyd dev-token` prints.
func (i *Issuer) Token(sub string, roles []string, ttl time.Duration) (string, error) {
	if sub == "" {
		return "", errors.New("issue token: empty subject")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue token: ttl %v must be positive", ttl)
	}
	return i.Sign(i.claims(sub, roles, "", ttl))
}

// claims are the standard claims of every token the issuer hands out; nonce
// is left out when empty.
func (i *Issuer) claims(sub string, roles []string, nonce string, ttl time.Duration) map[string]any {
	now := i.cfg.Clock()
	if roles == nil {
		roles = []string{}
	}
	c := map[string]any{
		"iss":      i.cfg.URL,
		"aud":      i.cfg.ClientID,
		"sub":      sub,
		"iat":      now.Unix(),
		"exp":      now.Add(ttl).Unix(),
		RolesClaim: roles,
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return c
}
