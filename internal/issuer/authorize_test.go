package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/issuer"
	"golang.org/x/oauth2"
)

// authQuery is a valid authorization request for the default client.
func authQuery() url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {issuer.DefaultClientID},
		"redirect_uri":          {callback},
		"state":                 {"xyz"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"},
	}
}

func TestAuthorizeRejects(t *testing.T) {
	t.Parallel()
	f := setup(t, "/dev-issuer", func(c *issuer.Config) { c.ClientID = issuer.DefaultClientID })
	tests := []struct {
		name      string
		key, val  string
		wantError string // "" means an error page, never a redirect
	}{
		{"unknown client", "client_id", "evil", ""},
		{"redirect to another host", "redirect_uri", "https://evil.example/cb", ""},
		{"redirect with a fragment", "redirect_uri", callback + "#x", ""},
		{"redirect that is not http", "redirect_uri", "javascript:alert(1)", ""},
		{"implicit flow", "response_type", "token", "unsupported_response_type"},
		{"no PKCE", "code_challenge", "", "invalid_request"},
		{"plain PKCE", "code_challenge_method", "plain", "invalid_request"},
		{"malformed challenge", "code_challenge", "short", "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := authQuery()
			q.Set(tt.key, tt.val)
			resp, body := f.get(t, f.iss.AuthorizationEndpoint()+"?"+q.Encode())
			if tt.wantError == "" {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("got %s Location %q, want a 400 page", resp.Status, resp.Header.Get("Location"))
				}
				if !strings.Contains(body, "Sign-in request rejected") {
					t.Errorf("error page body: %s", body)
				}
				return
			}
			got := redirectParams(t, resp, callback)
			if got.Get("error") != tt.wantError || got.Get("state") != "xyz" {
				t.Errorf("redirect query %v, want error %q and the state", got, tt.wantError)
			}
		})
	}
}

func TestAuthorizeRedirectAllowList(t *testing.T) {
	t.Parallel()
	allowed := "https://app.example/auth/callback"
	f := setup(t, "", func(c *issuer.Config) { c.RedirectURLs = []string{allowed} })
	for uri, want := range map[string]int{allowed: http.StatusOK, callback: http.StatusBadRequest, allowed + "/": http.StatusBadRequest} {
		q := authQuery()
		q.Set("redirect_uri", uri)
		if resp, _ := f.get(t, f.iss.AuthorizationEndpoint()+"?"+q.Encode()); resp.StatusCode != want {
			t.Errorf("redirect_uri %s: %s, want %d", uri, resp.Status, want)
		}
	}
}

func TestSignInPageEscapes(t *testing.T) {
	t.Parallel()
	f := setup(t, "/dev-issuer", nil)
	q := authQuery()
	evil := `"><script>alert(1)</script>`
	q.Set("state", evil)
	q.Set("nonce", evil)
	resp, body := f.get(t, f.iss.AuthorizationEndpoint()+"?"+q.Encode())
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "<script>") {
		t.Fatalf("%s, page contains unescaped input:\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	back := redirectParams(t, f.signIn(t, f.iss.AuthorizationEndpoint()+"?"+q.Encode(), "carol", nil), callback)
	if back.Get("state") != evil || back.Get("code") == "" {
		t.Errorf("redirect query %v, want the state unchanged and a code", back)
	}
}

func TestApproveNeedsUserID(t *testing.T) {
	t.Parallel()
	f := setup(t, "", nil)
	resp := f.signIn(t, f.iss.AuthorizationEndpoint()+"?"+authQuery().Encode(), "   ", nil)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("got %s Location %q, want the page again with 400", resp.Status, resp.Header.Get("Location"))
	}
	// The hidden fields are checked again on POST: a forged form is refused.
	form := authQuery()
	form.Set("redirect_uri", "https://evil.example/cb")
	form.Set("user_id", "mallory")
	resp, err := f.client.PostForm(f.iss.AuthorizationEndpoint(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("forged POST: %s Location %q, want 400 and no redirect", resp.Status, resp.Header.Get("Location"))
	}
}
