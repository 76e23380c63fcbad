package issuer

import (
	"net/http"
	"net/url"
)

// tokenResponse is a successful token response (RFC 6749 section 5.1 plus the
// OpenID Connect id_token).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// tokenError is an RFC 6749 section 5.2 error response.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// serveToken redeems an authorization code. The code must come from the same
// client and redirect URI it was issued to, with the PKCE verifier of its
// challenge. A client secret, in the form or in Basic auth, is accepted and
// ignored: the development issuer has no secrets, PKCE binds the code instead.
// The access token is a JWT with the same claims as the ID token, so a client
// can use either as its bearer token.
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fail := func(status int, code, desc string) {
		writeJSON(w, status, tokenError{Error: code, Description: desc})
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	if user, _, ok := r.BasicAuth(); ok {
		// RFC 6749 section 2.3.1: Basic credentials are form-urlencoded first.
		id, err := url.QueryUnescape(user)
		if err != nil || (clientID != "" && clientID != id) {
			fail(http.StatusBadRequest, "invalid_request", "conflicting client credentials")
			return
		}
		clientID = id
	}
	switch {
	case f.Get("grant_type") != "authorization_code":
		fail(http.StatusBadRequest, "unsupported_grant_type", "only authorization_code is supported")
		return
	case f.Get("code") == "" || f.Get("redirect_uri") == "" || f.Get("code_verifier") == "":
		fail(http.StatusBadRequest, "invalid_request", "code, redirect_uri and code_verifier are required")
		return
	case clientID != i.cfg.ClientID:
		w.Header().Set("WWW-Authenticate", `Basic realm="dev-issuer"`)
		fail(http.StatusUnauthorized, "invalid_client", "unknown client")
		return
	}
	g, ok := i.codes.redeem(f.Get("code"))
	switch {
	case !ok:
		fail(http.StatusBadRequest, "invalid_grant", "code is unknown, used or expired")
		return
	case g.clientID != clientID || g.redirectURI != f.Get("redirect_uri"):
		fail(http.StatusBadRequest, "invalid_grant", "code was issued to another client or redirect_uri")
		return
	case !verifyPKCE(g.challenge, f.Get("code_verifier")):
		fail(http.StatusBadRequest, "invalid_grant", "code_verifier does not match code_challenge")
		return
	}
	claims := i.claims(g.sub, g.roles, g.nonce, i.cfg.TokenTTL)
	scopeClaims(claims, g.scopes, g.user, g.name, g.roles)
	token, err := i.Sign(claims)
	if err != nil {
		i.cfg.Logger.ErrorContext(r.Context(), "dev issuer token", "error", err)
		fail(http.StatusInternalServerError, "server_error", "")
		return
	}
	i.cfg.Logger.InfoContext(r.Context(), "dev issuer issued token", "user_id", g.sub)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: token,
		IDToken:     token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(i.cfg.TokenTTL.Seconds()),
	})
}
