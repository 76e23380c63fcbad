package auth_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/auth"
)

func TestRolesFromClaims(t *testing.T) {
	t.Parallel()
	many := make([]any, 300)
	for i := range many {
		many[i] = strings.Repeat("r", i+1)
	}
	tests := []struct {
		name   string
		claims string
		path   string
		want   []string
	}{
		{"flat list (Azure AD, dev issuer)", `{"roles":["ADMIN","USER"]}`, "roles", []string{"ADMIN", "USER"}},
		{"groups", `{"groups":["eng","ops"]}`, "groups", []string{"eng", "ops"}},
		{"Keycloak realm roles", `{"realm_access":{"roles":["ADMIN","offline_access"]}}`, "realm_access.roles", []string{"ADMIN", "offline_access"}},
		{"Keycloak client roles", `{"resource_access":{"myclient":{"roles":["editor"]},"other":{"roles":["x"]}}}`, "resource_access.myclient.roles", []string{"editor"}},
		{"client id with dots", `{"resource_access":{"my.client":{"roles":["editor"]}}}`, "resource_access.my.client.roles", []string{"editor"}},
		{"Auth0 namespaced claim", `{"https://example.com/roles":["ADMIN"]}`, "https://example.com/roles", []string{"ADMIN"}},
		{"namespaced object", `{"https://example.com/app":{"roles":["ADMIN"]}}`, "https://example.com/app.roles", []string{"ADMIN"}},
		{"exact key wins over nesting", `{"a.b":["flat"],"a":{"b":["nested"]}}`, "a.b", []string{"flat"}},
		{"longest prefix wins", `{"a.b":{"c":["long"]},"a":{"b":{"c":["short"]}}}`, "a.b.c", []string{"long"}},
		{"single string", `{"roles":"ADMIN"}`, "roles", []string{"ADMIN"}},
		{"single string is not split", `{"roles":"ADMIN USER"}`, "roles", []string{"ADMIN USER"}},
		{"duplicates and empties", `{"roles":["A","","B","A",""]}`, "roles", []string{"A", "B"}},
		{"mixed list keeps the strings", `{"roles":["A",1,null,{"x":"y"},["B"],"C"]}`, "roles", []string{"A", "C"}},
		{"number", `{"roles":42}`, "roles", nil},
		{"object", `{"roles":{"ADMIN":true}}`, "roles", nil},
		{"null", `{"roles":null}`, "roles", nil},
		{"empty list", `{"roles":[]}`, "roles", nil},
		{"missing", `{"sub":"x"}`, "roles", nil},
		{"path through a non-object", `{"realm_access":["roles"]}`, "realm_access.roles", nil},
		{"path too deep", `{"realm_access":{"roles":["A"]}}`, "realm_access.roles.more", nil},
		{"empty path", `{"":["A"]}`, "", nil},
		{"over-long role dropped", `{"roles":["A","` + strings.Repeat("x", 257) + `"]}`, "roles", []string{"A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var claims map[string]any
			if err := json.Unmarshal([]byte(tt.claims), &claims); err != nil {
				t.Fatal(err)
			}
			if got := auth.RolesFromClaims(claims, tt.path); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("capped at 256", func(t *testing.T) {
		got := auth.RolesFromClaims(map[string]any{"roles": many}, "roles")
		if len(got) != 256 || got[0] != "r" {
			t.Errorf("%d roles, want the first 256", len(got))
		}
	})
	t.Run("nil claims", func(t *testing.T) {
		if got := auth.RolesFromClaims(nil, "roles"); got != nil {
			t.Errorf("got %q", got)
		}
	})
}

func FuzzRolesFromClaims(f *testing.F) {
	f.Add([]byte(`{"roles":["ADMIN","USER"]}`), "roles")
	f.Add([]byte(`{"realm_access":{"roles":["ADMIN"]}}`), "realm_access.roles")
	f.Add([]byte(`{"resource_access":{"my.client":{"roles":["a","a",""]}}}`), "resource_access.my.client.roles")
	f.Add([]byte(`{"https://example.com/roles":["ADMIN"]}`), "https://example.com/roles")
	f.Add([]byte(`{"groups":"eng"}`), "groups")
	f.Add([]byte(`{"roles":[1,"x",null,{"a":1}]}`), "roles")
	f.Add([]byte(`{"a":{"":{"":["x"]}}}`), "a..")
	f.Add([]byte(`{"roles":{"roles":42}}`), "roles.roles")
	f.Add([]byte(`[]`), ".")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		var claims map[string]any
		if json.Unmarshal(data, &claims) != nil {
			return
		}
		roles := auth.RolesFromClaims(claims, path)
		if len(roles) > 256 {
			t.Fatalf("%d roles", len(roles))
		}
		for i, r := range roles {
			if r == "" || len(r) > 256 || slices.Contains(roles[:i], r) {
				t.Fatalf("bad role %q in %q", r, roles)
			}
		}
	})
}
