package issuer

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

const (
	maxFormBytes = 64 << 10
	maxUserID    = 256
	maxRoles     = 64
	maxRoleLen   = 256
)

// serveApprove handles the sign-in form: it checks the carried-through
// authorization request again (hidden fields are as untrusted as the query
// string), issues a one-time code for the chosen user and roles, and sends
// the browser back to the client.
func (i *Issuer) serveApprove(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		i.renderError(w, "the sign-in form could not be read")
		return
	}
	a := parseAuthRequest(r.PostForm)
	if !i.admit(w, r, a) {
		return
	}
	userID := strings.TrimSpace(r.PostForm.Get("user_id"))
	roles := parseRoles(r.PostForm["role"], r.PostForm.Get("roles"))
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" || len(name) > maxUserID {
		name = userID
	}
	sub := userID
	if i.cfg.OpaqueSubjects {
		sub = opaqueSubject(userID)
	}
	if userID == "" || len(userID) > maxUserID {
		i.renderSignIn(w, http.StatusBadRequest, signInPage{
			Req: a, UserID: userID, Roles: roles,
			Error: "Type a user id of at most 256 characters.",
		})
		return
	}
	code, err := i.codes.issue(grant{
		clientID:    a.ClientID,
		redirectURI: a.RedirectURI,
		nonce:       a.Nonce,
		challenge:   a.Challenge,
		sub:         sub,
		roles:       roles,
		user:        userID,
		name:        name,
		scopes:      parseScopes(a.Scope),
	})
	if err != nil {
		i.cfg.Logger.WarnContext(r.Context(), "dev issuer refused sign-in", "error", err)
		a.redirect(w, r, url.Values{"error": {"temporarily_unavailable"}, "error_description": {err.Error()}})
		return
	}
	i.cfg.Logger.InfoContext(r.Context(), "dev issuer sign-in", "user_id", userID, "roles", roles)
	a.redirect(w, r, url.Values{"code": {code}})
}

// parseRoles merges the ticked role boxes with the comma-separated extra
// roles: trimmed, without empty or over-long entries, each once, in order.
func parseRoles(ticked []string, extra string) []string {
	roles := []string{}
	for _, r := range slices.Concat(ticked, strings.Split(extra, ",")) {
		r = strings.TrimSpace(r)
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
