package issuer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const callback = "http://127.0.0.1:5555/auth/callback"

func (f fixture) oauth2Config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:    f.iss.ClientID(),
		Endpoint:    oauth2.Endpoint{AuthURL: f.iss.AuthorizationEndpoint(), TokenURL: f.iss.TokenEndpoint()},
		RedirectURL: callback,
		Scopes:      []string{oidc.ScopeOpenID},
	}
}

// TestCodeFlow signs in through the real endpoints with golang.org/x/oauth2,
// the way notifyd's /auth/login does, and verifies the ID token with go-oidc.
func TestCodeFlow(t *testing.T) {
	t.Parallel()
	f := setup(t, "/dev-issuer", nil)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, f.client)
	conf := f.oauth2Config()
	verifier, state, nonce := oauth2.GenerateVerifier(), `st&te="<x>"`, "n-0nce"

	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	resp := f.signIn(t, authURL, "alice", url.Values{"role": {"ADMIN"}, "roles": {" ops , ,ops,x"}})
	q := redirectParams(t, resp, callback)
	if q.Get("state") != state {
		t.Fatalf("state = %q, want %q", q.Get("state"), state)
	}

	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Errorf("token type %q expiry %v, want Bearer in about an hour", tok.TokenType, tok.Expiry)
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, f.client), f.iss.URL())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	v := provider.Verifier(&oidc.Config{ClientID: f.iss.ClientID(), Now: f.clock.Now})
	for name, raw := range map[string]string{"id_token": tok.Extra("id_token").(string), "access_token": tok.AccessToken} {
		idt, err := v.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("go-oidc rejects %s: %v", name, err)
		}
		var claims struct {
			Roles []string `json:"roles"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != "alice" || idt.Nonce != nonce || !slices.Equal(claims.Roles, []string{"ADMIN", "ops", "x"}) {
			t.Errorf("%s: sub %q nonce %q roles %q", name, idt.Subject, idt.Nonce, claims.Roles)
		}
	}
}

// TestTokenRejects pins the RFC 6749 error for each way a code redemption
// can be wrong.
func TestTokenRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(f fixture, form url.Values)
		status int
		want   string
	}{
		{"wrong PKCE verifier", func(_ fixture, form url.Values) { form.Set("code_verifier", oauth2.GenerateVerifier()) }, 400, "invalid_grant"},
		{"wrong redirect_uri", func(_ fixture, form url.Values) { form.Set("redirect_uri", "http://127.0.0.1:5555/other") }, 400, "invalid_grant"},
		{"unknown code", func(_ fixture, form url.Values) { form.Set("code", "nope") }, 400, "invalid_grant"},
		{"expired code", func(f fixture, _ url.Values) { f.clock.Advance(61 * time.Second) }, 400, "invalid_grant"},
		{"unknown client", func(_ fixture, form url.Values) { form.Set("client_id", "someone-else") }, 401, "invalid_client"},
		{"missing verifier", func(_ fixture, form url.Values) { form.Del("code_verifier") }, 400, "invalid_request"},
		{"implicit grant", func(_ fixture, form url.Values) { form.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, "", nil)
			form := f.codeForm(t)
			tt.change(f, form)
			if status, code := f.postToken(t, form); status != tt.status || code != tt.want {
				t.Errorf("got %d %q, want %d %q", status, code, tt.status, tt.want)
			}
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	t.Parallel()
	f := setup(t, "/dev-issuer", nil)
	form := f.codeForm(t)
	form.Set("client_secret", "ignored")
	if status, code := f.postToken(t, form); status != http.StatusOK {
		t.Fatalf("first redemption: %d %q", status, code)
	}
	if status, code := f.postToken(t, form); status != 400 || code != "invalid_grant" {
		t.Fatalf("second redemption: %d %q, want 400 invalid_grant", status, code)
	}
	// A failed attempt burns the code too, so it cannot be guessed at.
	form = f.codeForm(t)
	good := form.Get("code_verifier")
	form.Set("code_verifier", oauth2.GenerateVerifier())
	f.postToken(t, form)
	form.Set("code_verifier", good)
	if status, code := f.postToken(t, form); status != 400 || code != "invalid_grant" {
		t.Fatalf("after a failed attempt: %d %q, want 400 invalid_grant", status, code)
	}
}

// codeForm signs in as "bob" and returns a valid token request for the code.
func (f fixture) codeForm(t *testing.T) url.Values {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	authURL := f.oauth2Config().AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))
	q := redirectParams(t, f.signIn(t, authURL, "bob", nil), callback)
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {q.Get("code")},
		"redirect_uri":  {callback},
		"client_id":     {f.iss.ClientID()},
		"code_verifier": {verifier},
	}
}

// postToken posts form to the token endpoint and returns the status and the
// RFC 6749 error code ("" on success).
func (f fixture) postToken(t *testing.T, form url.Values) (int, string) {
	t.Helper()
	resp, err := f.client.PostForm(f.iss.TokenEndpoint(), form)
	if err != nil {
		t.Fatalf("POST token: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Error       string `json:"error"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response: %v", err)
	}
	if (body.Error == "") == (body.AccessToken == "") {
		t.Fatalf("token response has error %q and access token %q", body.Error, body.AccessToken)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, body.Error
}
