// Package httpapi is notifyd's HTTP surface, every route in one table (New):
// the stream (served by package stream), publishing and the original
// design's actions (publish.go, actions.go), the inbox (history, read state,
// counts, preferences: inbox.go, whose changes reach other nodes through
// package inboxsync), browser sign-in, health and readiness, /metrics,
// /openapi.json, the static client and the monitoring page
// /test-notifications. Around them: who is asking (identity.go), which
// proxies to trust (proxy.go), CORS, rate limits and body deadlines.
//
// Handlers return errors; one adapter (respond.go) turns them into a status
// and a JSON {"error": …}, and logs only server faults.
package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/notifyd/notifyd/internal/inboxsync"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/signin"
	"github.com/notifyd/notifyd/internal/stream"
)

// Authenticator turns a bearer token into an identity. Errors wrap
// notify.ErrUnauthenticated (401) or notify.ErrUnavailable (503).
type Authenticator interface {
	Verify(ctx context.Context, rawToken string) (notify.Identity, error)
}

// Readiness is what /readyz says: per component, what is not ready
// (Problems: the answer is 503), and what an operator should know that does
// not make the node unready (Notes, e.g. a snapshot held for long).
type Readiness struct {
	Problems map[string]string
	Notes    map[string]string
}

// ReadinessCheck reports the node's readiness.
type ReadinessCheck func(ctx context.Context) Readiness

// Deps are the services the API calls.
type Deps struct {
	Auth          Authenticator
	Notifications *postgres.Notifications
	Queue         *postgres.Queue
	Streams       *stream.Server
	Ready         ReadinessCheck
	// SignIn is the browser sign-in and session cookies; nil disables them.
	SignIn *signin.Flow
	// Inbox serves history, read state and mutes; nil disables them.
	Inbox *postgres.Inbox
	// InboxSync announces the inbox's changes to every node; required
	// with Inbox.
	InboxSync *inboxsync.Sync
	// Metrics counts requests and is served at /metrics; nil disables both.
	Metrics *metrics.Metrics
	// Mounts are extra handlers by path prefix (the development issuer).
	Mounts map[string]http.Handler
	// Sent, when set, is given each notification the API sent born
	// published (committed, numbered), as soon as its commit returns
	// (feed.Offer: the local streams get it without the NOTIFY round trip).
	Sent func(notify.Notification)
}

// Config tunes the API.
type Config struct {
	// AdminRoles may publish to others, broadcast and see the full status
	// (NOTIFY_ADMIN_ROLES). Default ["ADMIN"].
	AdminRoles []string
	// MaxBodyBytes caps request bodies; larger ones get 413. Default 64 KiB.
	MaxBodyBytes int64
	// RequestTimeout bounds every request but the event stream: reading
	// its body, the handler and writing the answer (NOTIFY_REQUEST_TIMEOUT).
	// Default 30s.
	RequestTimeout time.Duration
	// NodeID names this process in status answers.
	NodeID string
	// AllowedOrigins may call the API from a browser with credentials
	// (NOTIFY_ALLOWED_ORIGINS); empty: same origin only.
	AllowedOrigins []string
	// PublishRate is how many notifications one ordinary user may publish
	// a second (the test action), with bursts of PublishBurst
	// (NOTIFY_PUBLISH_RATE, NOTIFY_PUBLISH_BURST). Default 50 and 100; a
	// negative rate disables it.
	PublishRate  float64
	PublishBurst int
	// AdminPublishRate and AdminPublishBurst are the same for each caller
	// holding an admin role: the services that publish for an application,
	// whose rate is that of their whole application, not of one person
	// (NOTIFY_ADMIN_PUBLISH_RATE, NOTIFY_ADMIN_PUBLISH_BURST). Default 5000
	// and 10000, so a service sustains 1,000 a second with room to spare
	// while a runaway loop is still stopped; a negative rate disables it.
	AdminPublishRate  float64
	AdminPublishBurst int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For, -Proto
	// and -Host are believed (NOTIFY_TRUSTED_PROXIES). Empty: none are.
	TrustedProxies []netip.Prefix
	// Clock tells the time for the rate limits. Default time.Now.
	Clock func() time.Time
	// LoginRate is how many browser sign-ins one client address may start
	// a second (GET /auth/login), with bursts of LoginBurst
	// (NOTIFY_LOGIN_RATE, NOTIFY_LOGIN_BURST); beyond it 429. Every start
	// stores a sign-in in the database. Default 1 and 20; a negative rate
	// disables it.
	LoginRate  float64
	LoginBurst int
	// Logger receives server faults. Default slog.Default().
	Logger *slog.Logger
}

// API holds the handlers.
type API struct {
	cfg              Config
	deps             Deps
	log              *slog.Logger
	publishRate      *rateLimiter // ordinary users, by user id
	adminPublishRate *rateLimiter // admin roles, by user id
	loginRate        *rateLimiter // by client address
}

// WithDefaults returns a copy of c with every unset field defaulted.
func (c Config) WithDefaults() Config {
	if len(c.AdminRoles) == 0 {
		c.AdminRoles = []string{"ADMIN"}
	}
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, 64<<10)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.PublishRate = cmp.Or(c.PublishRate, 50)
	c.PublishBurst = cmp.Or(c.PublishBurst, 100)
	c.AdminPublishRate = cmp.Or(c.AdminPublishRate, 5000)
	c.AdminPublishBurst = cmp.Or(c.AdminPublishBurst, 10000)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	c.LoginRate = cmp.Or(c.LoginRate, 1)
	c.LoginBurst = cmp.Or(c.LoginBurst, 20)
	return c
}

// New returns the API; Handler gives its routes.
func New(deps Deps, cfg Config) (*API, error) {
	if deps.Auth == nil || deps.Notifications == nil || deps.Queue == nil || deps.Streams == nil {
		return nil, errors.New("httpapi: Auth, Notifications, Queue and Streams are required")
	}
	if deps.Inbox != nil && deps.InboxSync == nil {
		return nil, errors.New("httpapi: InboxSync is required with Inbox")
	}
	cfg = cfg.WithDefaults()
	return &API{cfg: cfg, deps: deps, log: cfg.Logger,
		publishRate:      newRateLimiter(cfg.PublishRate, cfg.PublishBurst, maxRateKeys),
		adminPublishRate: newRateLimiter(cfg.AdminPublishRate, cfg.AdminPublishBurst, maxRateKeys),
		loginRate:        newRateLimiter(cfg.LoginRate, cfg.LoginBurst, maxRateKeys)}, nil
}

// Handler returns the routes. No compression middleware: it would buffer
// the stream.
func (a *API) Handler() http.Handler { return a.engine() }

// Routes lists the registered method and path pairs (for the OpenAPI test).
func (a *API) Routes() [][2]string {
	var out [][2]string
	for _, r := range a.engine().Routes() {
		out = append(out, [2]string{r.Method, r.Path})
	}
	return out
}

func (a *API) engine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode) // no route dump on stdout; the setting is atomic
	r := gin.New()
	// Forwarded headers are judged by a.forwarded alone; gin's own
	// ClientIP would trust every peer's by default.
	_ = r.SetTrustedProxies(nil)
	r.HandleMethodNotAllowed = true
	r.Use(a.forwarded(), a.requestID(), a.deadlines(), a.recoverer(), a.cors())
	r.NoRoute(a.handle(func(*gin.Context) error { return errNoRoute }))
	r.NoMethod(a.handle(func(*gin.Context) error { return errNoMethod }))

	api := r.Group("/api/notifications", a.authenticate())
	api.GET("/ws", a.handle(a.stream))
	api.POST("/ws", a.handle(a.action))
	api.POST("", a.handle(a.create))
	api.GET("", a.handle(a.history))
	api.GET("/unread-count", a.handle(a.unreadCount))
	api.POST("/read-all", a.handle(a.upToMark(inboxsync.ActionReadAll, (*postgres.Inbox).ReadAll)))
	api.POST("/:id/read", a.handle(a.markRead(true)))
	api.POST("/:id/unread", a.handle(a.markRead(false)))
	api.POST("/seen", a.handle(a.upToMark(inboxsync.ActionSeen, (*postgres.Inbox).Seen)))
	api.POST("/:id/archive", a.handle(a.archive(true)))
	api.POST("/:id/unarchive", a.handle(a.archive(false)))
	api.POST("/:id/snooze", a.handle(a.snooze))
	api.POST("/:id/interact", a.handle(a.interact))
	api.GET("/preferences", a.handle(a.preferences))
	api.PUT("/preferences", a.handle(a.preferences))

	if a.deps.SignIn != nil {
		r.GET("/auth/login", a.handle(a.signIn(a.login)))
		r.GET("/auth/callback", a.handle(a.signIn(func(c *gin.Context) error { return a.deps.SignIn.Callback(c.Writer, c.Request) })))
		r.POST("/auth/logout", a.handle(a.logout))
	}
	r.GET("/healthz", a.handle(a.healthz))
	r.GET("/readyz", a.handle(a.readyz))
	r.GET("/openapi.json", a.handle(a.openapi))
	r.GET("/static/*filepath", a.static())
	r.GET(testPagePath, a.testPage())
	if a.deps.Metrics != nil {
		r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(a.deps.Metrics.Registry, promhttp.HandlerOpts{})))
	}
	for prefix, h := range a.deps.Mounts {
		r.GET(prefix+"/*rest", gin.WrapH(h))
		r.POST(prefix+"/*rest", gin.WrapH(h))
	}
	return r
}

// maxRateKeys bounds the buckets of each rate limit (a few MB at most).
const maxRateKeys = 1 << 16

// login starts a browser sign-in, within the client address's rate.
func (a *API) login(c *gin.Context) error {
	ok, wait := a.loginRate.allow(clientKey(c.Request), a.cfg.Clock())
	if !ok {
		secs := max(1, int(math.Ceil(wait.Seconds())))
		return &httpError{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": strconv.Itoa(secs)},
			msg: fmt.Sprintf("too many sign-ins started from this address; retry in %ds", secs)}
	}
	return a.deps.SignIn.Login(c.Writer, c.Request)
}

// signIn guards a sign-in step: when browser sign-in is not configured it
// answers 503 saying what to set, before any rate limit or database work and
// without logging (anyone may call these routes; the server said so once at
// start).
func (a *API) signIn(step func(*gin.Context) error) func(*gin.Context) error {
	return func(c *gin.Context) error {
		if !a.deps.SignIn.EnabledFor(c.Request) {
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": signin.ErrNotConfigured.Error()})
			return nil
		}
		return step(c)
	}
}

// logout ends the browser session; like every cookie-authenticated change,
// only from this site or an allowed origin.
func (a *API) logout(c *gin.Context) error {
	if !a.sameSite(c.Request) {
		return errorf(http.StatusForbidden, "cross-site request refused (the Origin is not this site or an allowed origin)")
	}
	return a.deps.SignIn.Logout(c.Writer, c.Request)
}

// isAdmin reports whether id holds an admin role.
func (a *API) isAdmin(id notify.Identity) bool { return id.HasAnyRole(a.cfg.AdminRoles) }
