package issuer

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// authRequest is an authorization request (RFC 6749 section 4.1.1 with the
// PKCE parameters of RFC 7636). The sign-in page carries it through hidden
// fields, so the POST is checked again exactly like the GET.
type authRequest struct {
	ResponseType    string
	ClientID        string
	RedirectURI     string
	State           string
	Nonce           string
	Challenge       string
	ChallengeMethod string
	Scope           string
}

func parseAuthRequest(v url.Values) authRequest {
	return authRequest{
		ResponseType:    v.Get("response_type"),
		ClientID:        v.Get("client_id"),
		RedirectURI:     v.Get("redirect_uri"),
		State:           v.Get("state"),
		Nonce:           v.Get("nonce"),
		Challenge:       v.Get("code_challenge"),
		ChallengeMethod: v.Get("code_challenge_method"),
		Scope:           v.Get("scope"),
	}
}

// checkClient rejects an unknown client or redirect URI. Such errors are shown
// to the user rather than redirected (RFC 6749 section 4.1.2.1): sending them
// to an unchecked URI would make the issuer an open redirector.
func (i *Issuer) checkClient(a authRequest) error {
	if a.ClientID != i.cfg.ClientID {
		return errors.New("unknown client_id")
	}
	if !i.redirectAllowed(a.RedirectURI) {
		return errors.New("redirect_uri is not allowed for this client")
	}
	return nil
}

// redirectAllowed reports whether uri is one of Config.RedirectURLs or, when
// there are none, an http(s) URL on this machine.
func (i *Issuer) redirectAllowed(uri string) bool {
	if len(i.cfg.RedirectURLs) > 0 {
		return slices.Contains(i.cfg.RedirectURLs, uri)
	}
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Fragment != "" || u.User != nil {
		return false
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// admit reports whether the authorization request a (from the sign-in page
// or its form) may go on. When it may not, it has answered the browser: with
// an error page for an unknown client or redirect URI (see checkClient),
// else with a redirect carrying the error back to the client.
func (i *Issuer) admit(w http.ResponseWriter, r *http.Request, a authRequest) bool {
	if err := i.checkClient(a); err != nil {
		i.renderError(w, err.Error())
		return false
	}
	if code, desc := a.checkParams(); code != "" {
		a.redirect(w, r, url.Values{"error": {code}, "error_description": {desc}})
		return false
	}
	return true
}

// checkParams returns an RFC 6749 error code and description for a request
// from a known client that is still unacceptable; "" when it is fine.
func (a authRequest) checkParams() (code, description string) {
	switch {
	case a.ResponseType != "code":
		return "unsupported_response_type", "only response_type=code is supported"
	case a.Challenge == "":
		return "invalid_request", "code_challenge is required (PKCE)"
	case a.ChallengeMethod != "S256":
		return "invalid_request", "code_challenge_method must be S256"
	case len(a.Challenge) != 43 || strings.Trim(a.Challenge, base64URLChars) != "":
		return "invalid_request", "code_challenge is not a base64url SHA-256 hash"
	case len(a.State) > 2048 || len(a.Nonce) > 512 || len(a.Scope) > 1024:
		return "invalid_request", "state or nonce is too long"
	}
	return "", ""
}

const base64URLChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// redirect sends the browser back to the client with params and the state.
func (a authRequest) redirect(w http.ResponseWriter, r *http.Request, params url.Values) {
	u, _ := url.Parse(a.RedirectURI) // checked by checkClient
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if a.State != "" {
		q.Set("state", a.State)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// serveSignIn checks the authorization request and shows the sign-in page.
func (i *Issuer) serveSignIn(w http.ResponseWriter, r *http.Request) {
	a := parseAuthRequest(r.URL.Query())
	if !i.admit(w, r, a) {
		return
	}
	i.renderSignIn(w, http.StatusOK, signInPage{Req: a, UserID: "dev-user", Roles: []string{"USER"}})
}
