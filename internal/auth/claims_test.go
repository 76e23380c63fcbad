package auth_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/notify"
)

// TestUserClaim: with OIDC_USER_CLAIM the user id is that claim, not "sub",
// and a token without it is refused with a reason that names the claim.
func TestUserClaim(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)

	t.Run("preferred_username is the user id", func(t *testing.T) {
		v, _ := newVerifier(t, ti, func(c *auth.Config) { c.UserClaim = "preferred_username" })
		claims := ti.claims("CiQwOGE4Njg0Yi1kYjg4") // an opaque sub, as Dex gives
		claims["preferred_username"] = "alice"
		id, err := v.Verify(t.Context(), ti.sign(t, claims))
		if err != nil || id.UserID != "alice" {
			t.Fatalf("identity %+v, %v", id, err)
		}
	})

	t.Run("a nested claim by dotted path", func(t *testing.T) {
		v, _ := newVerifier(t, ti, func(c *auth.Config) { c.UserClaim = "ext.login" })
		claims := ti.claims("opaque")
		claims["ext"] = map[string]any{"login": "bob"}
		if id, err := v.Verify(t.Context(), ti.sign(t, claims)); err != nil || id.UserID != "bob" {
			t.Fatalf("identity %+v, %v", id, err)
		}
	})

	t.Run("a token without the claim is refused", func(t *testing.T) {
		v, _ := newVerifier(t, ti, func(c *auth.Config) { c.UserClaim = "email" })
		for name, val := range map[string]any{"missing": nil, "empty": "", "not a string": 42} {
			claims := ti.claims("opaque")
			if val != nil {
				claims["email"] = val
			}
			_, err := v.Verify(t.Context(), ti.sign(t, claims))
			rej, ok := errors.AsType[*auth.RejectedError](err)
			if !ok || !errors.Is(err, notify.ErrUnauthenticated) || !strings.Contains(rej.Reason, `"email"`) ||
				!strings.Contains(rej.Reason, "OIDC_USER_CLAIM") {
				t.Errorf("%s: err = %v, want a rejection naming the claim and OIDC_USER_CLAIM", name, err)
			}
		}
	})

	t.Run("default is sub", func(t *testing.T) {
		v, _ := newVerifier(t, ti, nil)
		claims := ti.claims("carol")
		claims["preferred_username"] = "someone-else"
		if id, err := v.Verify(t.Context(), ti.sign(t, claims)); err != nil || id.UserID != "carol" {
			t.Fatalf("identity %+v, %v", id, err)
		}
	})
}

// TestIDTokenName: the sign-in's ID token gives the page a display name
// (OIDC_NAME_CLAIM), the user id when it has none, and roles from groups
// when OIDC_ROLES_CLAIM says so.
func TestIDTokenName(t *testing.T) {
	t.Parallel()
	ti := startIssuer(t, nil)
	idToken := func(extra map[string]any) string {
		claims := ti.claims("opaque-sub")
		claims["nonce"] = "n-1"
		for k, val := range extra {
			claims[k] = val
		}
		return ti.sign(t, claims)
	}
	tests := []struct {
		name      string
		cfg       func(*auth.Config)
		extra     map[string]any
		wantUser  string
		wantName  string
		wantRoles []string
	}{
		{"name claim", nil, map[string]any{"name": "Alice Liddell"}, "opaque-sub", "Alice Liddell", []string{"USER"}},
		{"no name: the user id", nil, nil, "opaque-sub", "opaque-sub", []string{"USER"}},
		{"configured claims", func(c *auth.Config) {
			c.UserClaim, c.NameClaim, c.RolesClaim = "preferred_username", "given_name", "groups"
		}, map[string]any{"preferred_username": "alice", "given_name": "Alice", "groups": []string{"ADMIN"}}, "alice", "Alice", []string{"ADMIN"}},
		{"name not a string", nil, map[string]any{"name": []string{"x"}}, "opaque-sub", "opaque-sub", []string{"USER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newVerifier(t, ti, tt.cfg)
			p, err := v.VerifyIDToken(t.Context(), idToken(tt.extra), "n-1")
			if err != nil || p.UserID != tt.wantUser || p.Name != tt.wantName || !slices.Equal(p.Roles, tt.wantRoles) {
				t.Fatalf("person %+v, %v; want user %q name %q roles %v", p, err, tt.wantUser, tt.wantName, tt.wantRoles)
			}
		})
	}
	v, _ := newVerifier(t, ti, nil)
	if _, err := v.VerifyIDToken(t.Context(), idToken(nil), "other-nonce"); !errors.Is(err, notify.ErrUnauthenticated) {
		t.Fatalf("wrong nonce: %v", err)
	}
}
