package signin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// originKey carries the public origin of a request in its context.
type originKey struct{}

// WithPublicOrigin returns ctx carrying origin ("https://notify.example.com"),
// the scheme and host a browser sent the request to. Only a trusted reverse
// proxy's X-Forwarded-Proto and X-Forwarded-Host may say so (httpapi checks
// the peer against NOTIFY_TRUSTED_PROXIES first): a request's own Host header
// is anyone's to write, and a callback built from it would have the issuer
// send sign-in codes wherever the caller likes.
func WithPublicOrigin(ctx context.Context, origin string) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

// publicOrigin is the origin a trusted proxy named for r, if any.
func publicOrigin(r *http.Request) (*url.URL, bool) {
	s, _ := r.Context().Value(originKey{}).(string)
	if s == "" {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, false
	}
	return u, true
}

// redirectURL is the callback the issuer sends r's sign-in back to: the
// configured OIDC_REDIRECT_URL, or else, when trusted proxies may name the
// public origin (Config.ForwardedOrigin), that origin's /auth/callback. ok is
// false when neither applies: sign-in is off for r.
func (f *Flow) redirectURL(r *http.Request) (string, bool) {
	if f.cfg.RedirectURL != "" {
		return f.cfg.RedirectURL, true
	}
	if !f.cfg.ForwardedOrigin {
		return "", false
	}
	u, ok := publicOrigin(r)
	if !ok {
		return "", false
	}
	return u.Scheme + "://" + u.Host + "/auth/callback", true
}

// EnabledFor reports whether browser sign-in works for r: a redirect URL is
// configured, or a trusted proxy named the origin r was sent to.
func (f *Flow) EnabledFor(r *http.Request) bool {
	_, ok := f.redirectURL(r)
	return ok
}

// secure reports whether the browser reached us over TLS, directly or via a
// proxy that says so; cookies are Secure then. X-Forwarded-Proto is believed
// from anyone here: it can only make cookies stricter.
func secure(r *http.Request) bool {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return true
	}
	u, ok := publicOrigin(r)
	return ok && u.Scheme == "https"
}
