// Package signin is the browser sign-in: the OpenID Connect authorization
// code flow with PKCE, state and nonce, ending in a session cookie.
//
// The cookie holds 32 random bytes and nothing else; the database keeps only
// their SHA-256 with the user, roles and expiry (postgres.Sessions). So the
// cookie cannot be forged or read for content, a stolen database does not
// yield cookies, and logout or expiry take effect on every node at once.
package signin

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// Cookie names.
const (
	SessionCookie = "notifyd_session"
	loginCookie   = "notifyd_login"
)

// Config tunes the sign-in.
type Config struct {
	// ClientID is the OAuth2 client (OIDC_AUDIENCE). Required.
	ClientID string
	// ClientSecret authenticates the client at the token endpoint
	// (OIDC_CLIENT_SECRET); empty for public clients, which rely on PKCE.
	ClientSecret string
	// RedirectURL is the callback registered at the issuer
	// (OIDC_REDIRECT_URL). Empty: browser sign-in is off (Login and
	// Callback return ErrNotConfigured) unless ForwardedOrigin is set. It is
	// never derived from a request's own Host header: that is the caller's
	// to choose, and a callback built from it would have the issuer send
	// sign-in codes wherever the caller likes.
	RedirectURL string
	// ForwardedOrigin lets a request's public origin, as a trusted reverse
	// proxy states it (WithPublicOrigin; NOTIFY_TRUSTED_PROXIES), give the
	// callback when RedirectURL is empty: <origin>/auth/callback.
	ForwardedOrigin bool
	// SessionTTL is how long a session lasts (NOTIFY_SESSION_TTL). Default 12h.
	SessionTTL time.Duration
	// LoginTTL is how long a sign-in may take. Default 10m.
	LoginTTL time.Duration
	// DefaultRedirect is where sign-in returns without ?redirect=. Default /test-notifications.
	DefaultRedirect string
	// Scopes requested at the issuer (OIDC_SCOPES). Default openid, profile.
	// Dex and Okta put the groups claim in tokens only when "groups" is
	// asked for; "openid" is added when missing, as the flow needs it.
	// Hydra and Dex give a refresh token, and so sessions whose roles are
	// kept current (RefreshInterval), only when "offline_access" is asked
	// for; it is not added here: whether users may have long-lived grants
	// at the issuer is the deployment's choice.
	Scopes []string
	// RefreshInterval is how old a session's roles may get before they are
	// read again from the issuer with the session's refresh token
	// (NOTIFY_SESSION_REFRESH): when the session is next used, and for
	// sessions with open streams by a sweep (RunRefresh), which closes the
	// streams opened with roles that changed. Sessions whose sign-in gave no
	// refresh token keep the roles of their sign-in. Default 15m; negative
	// turns refreshing off.
	RefreshInterval time.Duration
	// MaxPendingSignIns caps the sign-ins in progress across all callers
	// (NOTIFY_MAX_PENDING_SIGNINS): each /auth/login stores one until it
	// finishes or expires, and beyond the cap /auth/login answers 503 rather
	// than let a flood from many addresses fill the table. Default 10000.
	MaxPendingSignIns int
	// Logger receives sign-ins and failures (never secrets). Default slog.Default().
	Logger *slog.Logger
}

// ErrNotConfigured is returned by Login and Callback when browser sign-in
// is off because no RedirectURL is set and no trusted proxy named the origin.
var ErrNotConfigured = errors.New("browser sign-in is not configured: set OIDC_REDIRECT_URL (and OIDC_CLIENT_SECRET)")

// Flow serves /auth/login, /auth/callback and /auth/logout, and
// authenticates requests by their session cookie.
type Flow struct {
	cfg      Config
	verifier *auth.Verifier
	sessions *postgres.Sessions
	issuer   issuerState // how the last refresh at the issuer went
}

// WithDefaults returns a copy of c with every unset field defaulted.
func (c Config) WithDefaults() Config {
	c.SessionTTL = cmp.Or(c.SessionTTL, 12*time.Hour)
	c.LoginTTL = cmp.Or(c.LoginTTL, 10*time.Minute)
	c.DefaultRedirect = cmp.Or(c.DefaultRedirect, "/test-notifications")
	c.MaxPendingSignIns = cmp.Or(c.MaxPendingSignIns, 10000)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, 15*time.Minute)
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "profile"}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// New returns the sign-in flow.
func New(verifier *auth.Verifier, sessions *postgres.Sessions, cfg Config) (*Flow, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("signin: ClientID (OIDC_AUDIENCE) is required")
	}
	cfg = cfg.WithDefaults()
	if !slices.Contains(cfg.Scopes, "openid") {
		cfg.Scopes = append([]string{"openid"}, cfg.Scopes...)
	}
	if cfg.RedirectURL != "" {
		if u, err := url.Parse(cfg.RedirectURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("signin: OIDC_REDIRECT_URL %q must be an absolute http(s) URL", cfg.RedirectURL)
		}
	} else if cfg.ForwardedOrigin {
		cfg.Logger.Info("browser sign-in callback: <origin>/auth/callback, the origin named by a trusted proxy (X-Forwarded-Proto, X-Forwarded-Host); register each at the issuer")
	} else {
		cfg.Logger.Warn("browser sign-in is off: OIDC_REDIRECT_URL is not set and no trusted proxy (NOTIFY_TRUSTED_PROXIES) may name the origin (the callback is never taken from a request's own Host header); bearer tokens still work")
	}
	return &Flow{cfg: cfg, verifier: verifier, sessions: sessions}, nil
}

// LocalPath checks that a redirect target is a path on this server, never
// another site: it must start with a single "/", and carry no scheme, host,
// backslash or control character. It returns the cleaned path.
func LocalPath(raw string) (string, bool) {
	if raw == "" || len(raw) > 2048 || !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") {
		return "", false
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "", false
	}
	return u.RequestURI(), true
}

// Sizes of the random values, in bytes before encoding.
const (
	sessionBytes = 32 // the session cookie
	stateBytes   = 24 // the OAuth2 state, also the login cookie
)

// randomToken returns n random bytes, base64url encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on failure)
	return base64.RawURLEncoding.EncodeToString(b)
}

// wellFormed reports whether s can be a value randomToken(n) made: exactly
// its length and canonical unpadded base64url. Anything else cannot name a
// session or a sign-in, so it is refused without asking the database; this
// keeps made-up cookies from costing a query each.
func wellFormed(s string, n int) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(n) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == n
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func (f *Flow) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure(r)})
}

// Authenticate returns the identity of the request's session cookie.
// ok=false when there is no cookie; an unknown, ended or expired session is
// an error wrapping notify.ErrUnauthenticated.
func (f *Flow) Authenticate(r *http.Request) (id notify.Identity, ok bool, err error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return notify.Identity{}, false, nil
	}
	if !wellFormed(c.Value, sessionBytes) {
		return notify.Identity{}, true, fmt.Errorf("%w: malformed session cookie; sign in again at /auth/login", notify.ErrUnauthenticated)
	}
	id, due, err := f.sessions.Session(r.Context(), hashToken(c.Value), f.cfg.RefreshInterval)
	if errors.Is(err, notify.ErrNotFound) {
		return notify.Identity{}, true, fmt.Errorf("%w: session ended or expired; sign in again at /auth/login", notify.ErrUnauthenticated)
	}
	if err != nil {
		return notify.Identity{}, true, err
	}
	if due {
		return f.refreshOnUse(r.Context(), id)
	}
	return id, true, nil
}
