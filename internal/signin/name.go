package signin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// nameCookie holds the signed-in user's display name (OIDC_NAME_CLAIM) for
// the page. The session row has no place for it, and it is only ever shown,
// never trusted: it is bound to the session by an HMAC keyed with the
// session cookie's secret, so no one without that secret can make a page
// show another name, and a cookie left from an earlier session is ignored.
const nameCookie = "notifyd_name"

// maxNameBytes bounds the display name kept in the cookie.
const maxNameBytes = 200

// nameMAC binds name to the session secret.
func nameMAC(secret, name string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("notifyd display name\x00" + name))
	return m.Sum(nil)
}

// encodeName is the name cookie's value for name under the session secret.
func encodeName(secret, name string) string {
	if len(name) > maxNameBytes {
		name = ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(name)) + "." +
		base64.RawURLEncoding.EncodeToString(nameMAC(secret, name))
}

// DisplayName returns the name the issuer gave for the request's signed-in
// user (OIDC_NAME_CLAIM, or the user id when the token had none), or "" when
// the request carries no name bound to its session cookie. It checks no
// session: callers authenticate first.
func (f *Flow) DisplayName(r *http.Request) string {
	sc, err := r.Cookie(SessionCookie)
	if err != nil || !wellFormed(sc.Value, sessionBytes) {
		return ""
	}
	nc, err := r.Cookie(nameCookie)
	if err != nil {
		return ""
	}
	rawName, rawMAC, ok := strings.Cut(nc.Value, ".")
	if !ok {
		return ""
	}
	name, err1 := base64.RawURLEncoding.DecodeString(rawName)
	mac, err2 := base64.RawURLEncoding.DecodeString(rawMAC)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, nameMAC(sc.Value, string(name))) {
		return ""
	}
	return string(name)
}
