package hydratest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// User is an account of the login app.
type User struct {
	// Username is typed on the login page and is the preferred_username claim.
	Username string
	Password string
	// Subject is Hydra's "sub": opaque, as at most providers (a UUID, say),
	// so that a test can tell it from the user name.
	Subject string
	// Name is the "name" claim, Email the "email" claim.
	Name, Email string
	// Groups is the "groups" claim, read at each consent.
	Groups []string
}

// loginApp is the login and consent app Hydra sends browsers to
// (URLS_LOGIN, URLS_CONSENT). The login page is an HTML form checked
// against its users; consent is granted without a screen, as for a
// first-party client, with claims that follow the scopes granted, as at Dex
// and Okta: preferred_username and name with "profile", email with "email",
// groups only with "groups".
type loginApp struct {
	url string

	mu    sync.Mutex
	users map[string]User // by Username
	admin string          // Hydra's admin API, once it serves
}

func startLoginApp(t testing.TB, users []User) *loginApp {
	a := &loginApp{users: map[string]User{}}
	for _, u := range users {
		a.users[u.Username] = u
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.loginSubmit)
	mux.HandleFunc("GET /consent", a.consent)
	mux.HandleFunc("POST /token-hook", a.tokenHook)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// SetGroups changes a user's groups at the provider, as an administrator
// would in its directory; tokens issued from then on carry the new ones.
func (p *Provider) SetGroups(username string, groups ...string) {
	p.login.mu.Lock()
	defer p.login.mu.Unlock()
	u, ok := p.login.users[username]
	if !ok {
		panic("hydratest: no user " + username)
	}
	u.Groups = groups
	p.login.users[username] = u
}

func (a *loginApp) setAdmin(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admin = u
}

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<title>Sign in</title>
<h1>Sign in</h1>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="challenge" value="{{.Challenge}}">
<label>User name <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>
`))

// loginPage is where Hydra sends the browser to sign in. If Hydra already
// knows the user (a remembered sign-in), it says skip: the login is
// accepted for the same subject without a page.
func (a *loginApp) loginPage(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	var req struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	if err := a.call("GET", "/admin/oauth2/auth/requests/login?login_challenge="+url.QueryEscape(challenge), nil, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if req.Skip {
		a.acceptLogin(w, r, challenge, req.Subject)
		return
	}
	a.showForm(w, http.StatusOK, challenge, "")
}

func (a *loginApp) showForm(w http.ResponseWriter, status int, challenge, problem string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = loginForm.Execute(w, struct{ Challenge, Error string }{challenge, problem})
}

// loginSubmit checks the form's user name and password.
func (a *loginApp) loginSubmit(w http.ResponseWriter, r *http.Request) {
	challenge := r.PostFormValue("challenge")
	a.mu.Lock()
	u, ok := a.users[r.PostFormValue("username")]
	a.mu.Unlock()
	if !ok || u.Password != r.PostFormValue("password") {
		a.showForm(w, http.StatusUnauthorized, challenge, "Wrong user name or password.")
		return
	}
	a.acceptLogin(w, r, challenge, u.Subject)
}

// acceptLogin tells Hydra who signed in, remembered for an hour (Hydra's
// session cookie), and sends the browser back to Hydra.
func (a *loginApp) acceptLogin(w http.ResponseWriter, r *http.Request, challenge, subject string) {
	body := map[string]any{"subject": subject, "remember": true, "remember_for": int(time.Hour.Seconds())}
	var next struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.call("PUT", "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(challenge), body, &next); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, next.RedirectTo, http.StatusFound)
}

// consent grants what the client asked for and puts the user's current
// claims into the tokens. It is not remembered: Hydra would replay a
// remembered consent's claims, and groups changed since would not show.
func (a *loginApp) consent(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	var req struct {
		Subject        string   `json:"subject"`
		RequestedScope []string `json:"requested_scope"`
		Audience       []string `json:"requested_access_token_audience"`
	}
	if err := a.call("GET", "/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(challenge), nil, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	claims := a.claims(req.Subject, req.RequestedScope)
	body := map[string]any{
		"grant_scope":                 req.RequestedScope,
		"grant_access_token_audience": req.Audience,
		"remember":                    false,
		"session":                     map[string]any{"id_token": claims, "access_token": claims},
	}
	var next struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.call("PUT", "/admin/oauth2/auth/requests/consent/accept?consent_challenge="+url.QueryEscape(challenge), body, &next); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, next.RedirectTo, http.StatusFound)
}

// tokenHook is Hydra's token hook (OAUTH2_TOKEN_HOOK), called before
// Hydra issues tokens for any grant: it puts the user's claims of now into
// them, as the consent does at sign-in. Without it a refresh token grant
// would carry the claims of the consent for the grant's whole life; with it
// a group changed at the provider (SetGroups) shows in the next refreshed ID
// token, which is what notifyd's session refresh reads (Ory's documented
// way to update claims on refresh).
func (a *loginApp) tokenHook(w http.ResponseWriter, r *http.Request) {
	var hook struct {
		Session struct {
			IDToken struct {
				Claims struct {
					Subject string `json:"sub"`
				} `json:"id_token_claims"`
			} `json:"id_token"`
		} `json:"session"`
		Request struct {
			GrantedScopes []string `json:"granted_scopes"`
		} `json:"request"`
	}
	if err := json.NewDecoder(r.Body).Decode(&hook); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	subject := hook.Session.IDToken.Claims.Subject
	if subject == "" { // client credentials: no user, nothing to change
		w.WriteHeader(http.StatusNoContent)
		return
	}
	claims := a.claims(subject, hook.Request.GrantedScopes)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"session": map[string]any{"id_token": claims, "access_token": claims}})
}

// claims are the subject's claims the granted scopes allow.
func (a *loginApp) claims(subject string, scopes []string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := map[string]any{}
	for _, u := range a.users {
		if u.Subject != subject {
			continue
		}
		if slices.Contains(scopes, "profile") {
			c["preferred_username"], c["name"] = u.Username, u.Name
		}
		if slices.Contains(scopes, "email") && u.Email != "" {
			c["email"], c["email_verified"] = u.Email, true
		}
		if slices.Contains(scopes, "groups") {
			c["groups"] = slices.Clone(u.Groups)
		}
	}
	return c
}

// call sends a request to Hydra's admin API and decodes its JSON answer.
func (a *loginApp) call(method, path string, in, out any) error {
	a.mu.Lock()
	admin := a.admin
	a.mu.Unlock()
	return adminCall(admin, method, path, in, out)
}

// adminCall sends in (JSON, if not nil) to Hydra's admin API at base and
// decodes a 2xx answer into out.
func adminCall(base, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("hydra admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra admin %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}
