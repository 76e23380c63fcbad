package issuer

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
)

// Claims that depend on the scopes asked for, as real providers give them:
// Dex and Okta put "groups" in tokens only for the groups scope, and the
// profile and email scopes bring preferred_username, name and email. Tests
// use them to check OIDC_SCOPES, OIDC_USER_CLAIM and OIDC_NAME_CLAIM against
// the same behaviour.
const (
	// GroupsClaim holds the roles again when "groups" was asked for.
	GroupsClaim = "groups"
	// EmailDomain is the domain of the "email" claim: <user id>@EmailDomain.
	EmailDomain = "example.test"
)

// scopeClaims adds to c the claims the granted scopes bring for the user
// typed on the sign-in page.
func scopeClaims(c map[string]any, scopes []string, user, name string, roles []string) {
	if slices.Contains(scopes, "profile") {
		c["preferred_username"] = user
		c["name"] = name
	}
	if slices.Contains(scopes, "email") {
		c["email"] = user + "@" + EmailDomain
		c["email_verified"] = true
	}
	if slices.Contains(scopes, "groups") {
		if roles == nil {
			roles = []string{}
		}
		c[GroupsClaim] = roles
	}
}

// parseScopes splits a scope parameter (RFC 6749 section 3.3).
func parseScopes(s string) []string { return strings.Fields(s) }

// opaqueSubject is the "sub" an issuer with Config.OpaqueSubjects gives
// user: stable, but not the name a sender knows, as with Dex.
func opaqueSubject(user string) string {
	sum := sha256.Sum256([]byte("notifyd dev issuer subject\x00" + user))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}
