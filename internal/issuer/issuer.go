// Package issuer is a small but real OpenID Connect provider.
//
// It exists for two callers. notifyd's embedded development identity provider
// (NOTIFY_DEV_AUTH) mounts it inside notifyd's own HTTP server so that a fresh
// checkout can sign in without running Keycloak or Auth0. Tests start it behind
// httptest.NewServer so that token verification is exercised against real
// discovery, real JWKS and real RS256 signatures instead of mocks.
//
// It implements discovery, a JWKS endpoint, the authorization code flow with
// PKCE (S256, required) and a token endpoint. Users are not authenticated: the
// sign-in page lets a developer type any user id and roles. Never expose it to
// anything but a developer's machine.
package issuer

import (
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config configures an Issuer. The zero value of every field but URL is usable.
type Config struct {
	// URL is the issuer identifier, e.g. "http://127.0.0.1:8080/dev-issuer".
	// The discovery document's "issuer" and every token's "iss" equal it
	// exactly, and the endpoints live under its path. Required.
	URL string
	// Key signs tokens. Default: a fresh 2048-bit key, which means tokens do not
	// survive a restart; persist one with MarshalKey and ParseKey when they must.
	Key *rsa.PrivateKey
	// KeyID is the JWKS "kid". Default: the key's RFC 7638 SHA-256 thumbprint,
	// so the same key always has the same id.
	KeyID string
	// Clock tells the time for "iat", "exp" and code expiry. Default: time.Now.
	Clock func() time.Time
	// Logger records codes and tokens issued (never their values). Default:
	// discards.
	Logger *slog.Logger
	// ClientID is the only client the issuer knows and the "aud" of every token
	// it issues. Default: "notifyd-dev".
	ClientID string
	// RedirectURLs are the redirect_uri values the code flow accepts, compared
	// exactly. Default (empty): any http or https URL whose host is a loopback
	// address or "localhost".
	RedirectURLs []string
	// TokenTTL is the lifetime of tokens from the token endpoint. Default: 1h.
	TokenTTL time.Duration
	// OpaqueSubjects makes the code flow's "sub" a hash of the user id typed
	// on the sign-in page, as Dex's is, so only preferred_username (profile
	// scope) or email (email scope) carries the id. Default: sub is the id.
	OpaqueSubjects bool
}

// DefaultClientID is the audience of tokens when Config.ClientID is empty.
const DefaultClientID = "notifyd-dev"

// WithDefaults returns a copy of c with every unset field defaulted, except
// Key and KeyID, which New fills in because generating a key can fail.
func (c Config) WithDefaults() Config {
	c.ClientID = cmp.Or(c.ClientID, DefaultClientID)
	c.TokenTTL = cmp.Or(c.TokenTTL, time.Hour)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("URL is required")
	case err != nil:
		return fmt.Errorf("URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("URL %q: want an absolute http or https URL", c.URL)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("URL %q: must not have a query, fragment or user info", c.URL)
	case c.TokenTTL < 0:
		return fmt.Errorf("TokenTTL %v: must be positive", c.TokenTTL)
	case c.Key != nil && c.Key.N.BitLen() < 2048:
		return fmt.Errorf("Key: %d bits, want at least 2048", c.Key.N.BitLen())
	}
	return nil
}

// Issuer issues and publishes the keys for tokens. It is safe for concurrent
// use.
type Issuer struct {
	cfg   Config
	base  string // cfg.URL without a trailing slash; endpoints hang off it
	path  string // base's URL path, where Handler expects to be mounted
	codes *codeStore
	pages *template.Template
}

// New checks cfg, generates a key if none is given and returns the issuer.
func New(cfg Config) (*Issuer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("issuer config: %w", err)
	}
	if cfg.Key == nil {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate issuer key: %w", err)
		}
		cfg.Key = key
	}
	if cfg.KeyID == "" {
		kid, err := thumbprint(cfg.Key)
		if err != nil {
			return nil, err
		}
		cfg.KeyID = kid
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("issuer pages: %w", err)
	}
	base := strings.TrimSuffix(cfg.URL, "/")
	u, _ := url.Parse(base) // validated above
	return &Issuer{cfg: cfg, base: base, path: u.Path, codes: newCodeStore(cfg.Clock), pages: pages}, nil
}

// URL returns the issuer identifier, exactly as configured.
func (i *Issuer) URL() string { return i.cfg.URL }

// ClientID returns the audience of the tokens the issuer signs.
func (i *Issuer) ClientID() string { return i.cfg.ClientID }

// MountPath returns the ServeMux pattern to mount Handler at: the issuer URL's
// path with a trailing slash ("/dev-issuer/", or "/" for a bare host).
func (i *Issuer) MountPath() string { return i.path + "/" }

// Handler serves the issuer's endpoints at their full paths, that is under the
// issuer URL's path: mount it without stripping anything, e.g.
// mux.Handle(iss.MountPath(), iss.Handler()) or, in gin,
// r.Any("/dev-issuer/*any", gin.WrapH(iss.Handler())).
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	mux.HandleFunc("GET /authorize", i.serveSignIn)
	mux.HandleFunc("POST /authorize", i.serveApprove)
	mux.HandleFunc("POST /token", i.serveToken)
	if i.path == "" {
		return mux
	}
	return http.StripPrefix(i.path, mux)
}
