package issuer

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// signInPage is the data of the sign-in page.
type signInPage struct {
	Req    authRequest
	UserID string
	Roles  []string
	Error  string
}

// Suggested lists the roles offered as tick boxes: ADMIN is notifyd's default
// NOTIFY_ADMIN_ROLES, USER an ordinary role to target.
func (p signInPage) Suggested() []string { return []string{"ADMIN", "USER"} }

// Ticked reports whether role's box starts ticked.
func (p signInPage) Ticked(role string) bool { return slices.Contains(p.Roles, role) }

// Other is the text of the free-form roles field: the roles without a box.
func (p signInPage) Other() string {
	var other []string
	for _, r := range p.Roles {
		if !slices.Contains(p.Suggested(), r) {
			other = append(other, r)
		}
	}
	return strings.Join(other, ", ")
}

// pagesHTML are the sign-in and error pages. html/template escapes every value
// by context, so request parameters cannot inject markup.
const pagesHTML = `
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>notifyd · development sign-in</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2433;margin:0}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002}
h1{font-size:1.3rem;margin:0 0 .25rem}p.note{color:#5b6475;font-size:.9rem;margin:0 0 1.5rem}
label{display:block;font-weight:600;margin:1rem 0 .35rem}
input[type=text]{box-sizing:border-box;width:100%;padding:.55rem .7rem;border:1px solid #c5cad3;border-radius:6px;font:inherit}
.roles label{display:inline-block;font-weight:400;margin:0 1rem .35rem 0}
button{margin-top:1.5rem;width:100%;padding:.7rem;border:0;border-radius:6px;background:#2458d6;color:#fff;font:inherit;font-weight:600;cursor:pointer}
.error{background:#fde8e8;color:#9b1c1c;padding:.6rem .8rem;border-radius:6px}
small{color:#5b6475}
</style></head><body><main>{{end}}

{{define "signin"}}{{template "head"}}
<h1>Development sign-in</h1>
<p class="note">notifyd's built-in identity provider: anyone may sign in as anyone.
Never enable it outside a developer's machine.</p>
{{with .Error}}<p class="error">{{.}}</p>{{end}}
<form method="post" autocomplete="off">
<input type="hidden" name="response_type" value="{{.Req.ResponseType}}">
<input type="hidden" name="client_id" value="{{.Req.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Req.RedirectURI}}">
<input type="hidden" name="state" value="{{.Req.State}}">
<input type="hidden" name="nonce" value="{{.Req.Nonce}}">
<input type="hidden" name="code_challenge" value="{{.Req.Challenge}}">
<input type="hidden" name="code_challenge_method" value="{{.Req.ChallengeMethod}}">
<input type="hidden" name="scope" value="{{.Req.Scope}}">
<label for="user_id">User id</label>
<input type="text" id="user_id" name="user_id" value="{{.UserID}}" required maxlength="256" autofocus>
<label for="roles">Roles</label>
<div class="roles">{{range .Suggested}}<label><input type="checkbox" name="role" value="{{.}}"{{if $.Ticked .}} checked{{end}}> {{.}}</label>{{end}}</div>
<input type="text" id="roles" name="roles" value="{{.Other}}" placeholder="other roles, comma separated">
<small>Signing in to <b>{{.Req.ClientID}}</b>, returning to {{.Req.RedirectURI}}</small>
<button type="submit">Sign in</button>
</form></main></body></html>{{end}}

{{define "error"}}{{template "head"}}
<h1>Sign-in request rejected</h1>
<p class="error">{{.}}</p>
<p class="note">The application that sent you here is misconfigured; this page does not redirect back to it.</p>
</main></body></html>{{end}}
`

func parsePages() (*template.Template, error) {
	return template.New("").Parse(pagesHTML)
}

func (i *Issuer) renderSignIn(w http.ResponseWriter, status int, p signInPage) {
	i.render(w, status, "signin", p)
}

// renderError shows a request error that must not be redirected.
func (i *Issuer) renderError(w http.ResponseWriter, msg string) {
	i.render(w, http.StatusBadRequest, "error", msg)
}

func (i *Issuer) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := i.pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "render sign-in page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
