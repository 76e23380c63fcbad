package auth

import (
	"slices"
	"strings"
)

// Limits on what a token's roles can cost: roles are matched against every
// notification's targets, and a claim is only as sane as its issuer.
const (
	maxRoles   = 256
	maxRoleLen = 256
	maxPathLen = 256
)

// RolesFromClaims returns the roles in claims at path, wherever the provider
// puts them:
//
//   - a top-level claim: "roles" (Azure AD, the dev issuer), "groups";
//   - a dotted path into nested objects: "realm_access.roles" (Keycloak realm
//     roles), "resource_access.myclient.roles" (Keycloak client roles);
//   - a claim whose name itself contains dots: "https://example.com/roles"
//     (Auth0). At each level the whole remaining path is tried as a key first,
//     then the longest dot-separated prefix that names an object, so
//     "resource_access.my.client.roles" finds the client "my.client".
//
// The value should be a list of strings. A single string is taken as one role
// (not split). In a list, elements that are not strings are skipped; any
// other value (number, object, null) means no roles. Roles are returned
// verbatim, in order, without duplicates or empty strings; roles longer than
// 256 bytes are dropped (not truncated, which could forge another role) and
// at most 256 are kept. It never fails: a malformed claim means no roles.
func RolesFromClaims(claims map[string]any, path string) []string {
	v, ok := lookup(claims, path)
	if !ok {
		return nil
	}
	var candidates []string
	switch x := v.(type) {
	case string:
		candidates = []string{x}
	case []string:
		candidates = x
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				candidates = append(candidates, s)
			}
		}
	}
	var roles []string
	for _, r := range candidates {
		if r == "" || len(r) > maxRoleLen || slices.Contains(roles, r) {
			continue
		}
		if len(roles) == maxRoles {
			break
		}
		roles = append(roles, r)
	}
	return roles
}

// lookup finds the value at path. It never backtracks: at each level it takes
// the whole remaining path if that is a key, otherwise the longest prefix
// ending before a dot that holds an object, so the work stays polynomial in
// the path's length whatever the claims.
func lookup(claims map[string]any, path string) (any, bool) {
	if path == "" || len(path) > maxPathLen {
		return nil, false
	}
	m := claims
	for {
		if v, ok := m[path]; ok {
			return v, true
		}
		next, rest := map[string]any(nil), ""
		for end := len(path); next == nil; {
			dot := strings.LastIndexByte(path[:end], '.')
			if dot < 0 {
				return nil, false
			}
			next, _ = m[path[:dot]].(map[string]any)
			rest, end = path[dot+1:], dot
		}
		m, path = next, rest
	}
}
