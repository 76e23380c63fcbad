package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/notifyd/notifyd/internal/notify"
)

// asymmetricAlgs are the algorithms go-oidc can verify. Anything else ("none",
// HS256 made with a public key as the secret) go-oidc refuses before any key
// is consulted.
func asymmetricAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{
		jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512,
		jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
	}
}

// explain turns go-oidc's refusal into an error for the caller. go-oidc has
// already decided the token is bad; its messages quote the token's claims and
// are not errors one can test with errors.Is, so the reason is worked out
// again here from the token, in the order go-oidc checks, without trusting it.
func (v *Verifier) explain(ctx context.Context, raw string, cause error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("verify token: %w", ctx.Err())
	}
	reason := v.reason(raw, cause)
	if reason == "" {
		v.cfg.Logger.WarnContext(ctx, "oidc keys unavailable", "issuer", v.cfg.IssuerURL, "jwks_url", v.cfg.JWKSURL, "error", cause)
		return fmt.Errorf("verify token: %w: issuer keys cannot be fetched", notify.ErrUnavailable)
	}
	v.cfg.Logger.DebugContext(ctx, "token rejected", "reason", reason, "error", cause)
	return reject(reason)
}

// reason says what is wrong with a token go-oidc refused, or "" when the
// issuer's keys could not be fetched to check its signature.
func (v *Verifier) reason(raw string, cause error) string {
	if _, ok := errors.AsType[*oidc.TokenExpiredError](cause); ok {
		return "token expired"
	}
	var header struct {
		Alg string `json:"alg"`
	}
	head, _, _ := strings.Cut(raw, ".")
	if b, err := base64.RawURLEncoding.DecodeString(head); err != nil || json.Unmarshal(b, &header) != nil {
		return "malformed token"
	}
	if !slices.Contains(asymmetricAlgs(), jose.SignatureAlgorithm(header.Alg)) {
		return "unsupported algorithm"
	}
	jws, err := jose.ParseSigned(raw, asymmetricAlgs())
	if err != nil {
		return "malformed token"
	}
	var claims struct {
		Iss string   `json:"iss"`
		Aud audience `json:"aud"`
		Nbf *float64 `json:"nbf"` // NumericDate, possibly fractional
	}
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims) != nil {
		return "malformed claims"
	}
	switch {
	case v.cfg.IssuerURL != "" && claims.Iss != v.cfg.IssuerURL:
		return "wrong issuer"
	case v.cfg.Audience != "" && !slices.Contains(claims.Aud, v.cfg.Audience):
		return "wrong audience"
	case claims.Nbf != nil && v.cfg.Clock().Add(5*time.Minute).Before(time.Unix(int64(*claims.Nbf), 0)):
		return "token not yet valid"
	case v.keysFailing.Load():
		return ""
	}
	return "bad signature"
}

// audience is "aud": one string or a list of them.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}
