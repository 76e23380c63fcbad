package issuer

import (
	"encoding/json"
	"net/http"
)

// discovery is the OpenID Provider Metadata document (OpenID Connect
// Discovery 1.0, section 3), limited to what the issuer really supports.
type discovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	ResponseTypes         []string `json:"response_types_supported"`
	GrantTypes            []string `json:"grant_types_supported"`
	SubjectTypes          []string `json:"subject_types_supported"`
	SigningAlgs           []string `json:"id_token_signing_alg_values_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	Scopes                []string `json:"scopes_supported"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	Claims                []string `json:"claims_supported"`
}

// AuthorizationEndpoint, TokenEndpoint and JWKSURL are where the issuer's
// endpoints are, as published in its discovery document.
func (i *Issuer) AuthorizationEndpoint() string { return i.base + "/authorize" }

// TokenEndpoint: see AuthorizationEndpoint.
func (i *Issuer) TokenEndpoint() string { return i.base + "/token" }

// JWKSURL: see AuthorizationEndpoint.
func (i *Issuer) JWKSURL() string { return i.base + "/jwks" }

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, discovery{
		Issuer:                i.cfg.URL,
		AuthorizationEndpoint: i.AuthorizationEndpoint(),
		TokenEndpoint:         i.TokenEndpoint(),
		JWKSURI:               i.JWKSURL(),
		ResponseTypes:         []string{"code"},
		GrantTypes:            []string{"authorization_code"},
		SubjectTypes:          []string{"public"},
		SigningAlgs:           []string{"RS256"},
		CodeChallengeMethods:  []string{"S256"},
		Scopes:                []string{"openid", "profile", "email", GroupsClaim, RolesClaim},
		TokenAuthMethods:      []string{"client_secret_basic", "client_secret_post", "none"},
		Claims: []string{"iss", "aud", "sub", "iat", "exp", "nonce", RolesClaim,
			"preferred_username", "name", "email", "email_verified", GroupsClaim},
	})
}

// writeJSON answers with v as JSON. The values are the issuer's own and always
// encode; a write error means the client went away, and nothing can be done.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
