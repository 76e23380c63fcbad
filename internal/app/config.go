// Package app wires notifyd's components into the two programs: the server
// (HTTP, streams, feed, listener and workers in one process) and the
// standalone worker. cmd/notifyd reads flags and environment into a Config
// and calls Start; tests call Start the same way on port 0.
package app

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/httpapi"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/retention"
	"github.com/notifyd/notifyd/internal/signin"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/worker"
)

// Config is everything a notifyd process needs.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string (DATABASE_URL). Required.
	DatabaseURL string
	// DatabaseDirectURL is a direct session connection to the same
	// database (DATABASE_DIRECT_URL), for what must keep one server session
	// across statements: the LISTEN connection, the migrations (goose's
	// session lock) and the queue workers, whose busy mark is a session
	// advisory lock held on a connection of their own. Default DatabaseURL.
	// When it differs, DatabaseURL is taken to be a transaction-mode pooler
	// (PgBouncer) and carries the request-driven work: stream openings,
	// replays, history, publishing and sign-ins (see postgres.PoolConfig.Pooled).
	DatabaseDirectURL string
	// DatabaseReplicaURL is a streaming replica of the database
	// (DATABASE_REPLICA_URL): stream replays and history pages read from it
	// once it has replayed past what each read needs, and from the primary
	// while it lags, is down, or is not a standby of the primary's database
	// (see postgres.Replica). Everything else stays on the primary.
	// Default none: every read on the primary, as before.
	DatabaseReplicaURL string
	// ReplicaWait is how long a read waits for the replica to replay far
	// enough before it reads from the primary (NOTIFY_REPLICA_WAIT). A
	// stream's replay waits within its opening turn. Default
	// postgres.ReplicaConfig.Wait's.
	ReplicaWait time.Duration
	// Addr is the listen address (NOTIFY_ADDR). Default 127.0.0.1:8080.
	Addr string
	// Stream configures heartbeats, timeouts and the sweep.
	Stream stream.Config
	// Worker configures the queue workers (poll interval, batch, lease, back-off).
	Worker worker.Config
	// Workers is how many queue workers this process runs. Default 1; -1 for none.
	Workers int
	// MaxAttempts is the attempt limit this node expects new queue items
	// to get (NOTIFY_MAX_ATTEMPTS). The limit is one setting for every node,
	// held by the database (postgres.Queue.MaxAttempts), so a node never
	// rewrites it: set, it seeds a database this start creates, and must
	// otherwise match, or Start fails saying how to change it. Zero: the
	// database's, whatever it is.
	MaxAttempts int
	// AdminRoles may publish to others, broadcast and see everything
	// (NOTIFY_ADMIN_ROLES). Default httpapi.Config.AdminRoles's.
	AdminRoles []string
	// OIDC verifies bearer tokens (OIDC_ISSUER_URL, OIDC_AUDIENCE,
	// OIDC_ROLES_CLAIM, OIDC_USER_CLAIM, OIDC_NAME_CLAIM, OIDC_JWKS_URL).
	OIDC auth.Config
	// Scopes are asked for at browser sign-in (OIDC_SCOPES); Dex and Okta
	// need "groups" for the groups claim. Default signin.Config.Scopes's.
	Scopes []string
	// ClientSecret and RedirectURL configure the browser sign-in
	// (OIDC_CLIENT_SECRET, OIDC_REDIRECT_URL); the client id is OIDC.Audience.
	// Without RedirectURL browser sign-in is off (503), except with DevAuth,
	// where the callback is this server's own listen address, or with
	// TrustedProxies, where it is <origin>/auth/callback of the origin a
	// trusted proxy names; it is never taken from a request's own Host
	// header.
	ClientSecret, RedirectURL string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For, -Proto
	// and -Host are believed (NOTIFY_TRUSTED_PROXIES): for client addresses
	// in rate limits and logs, Secure cookies and the sign-in callback.
	// Empty: none are, and those headers are dropped.
	TrustedProxies []netip.Prefix
	// SessionTTL is how long a browser session lasts (NOTIFY_SESSION_TTL).
	// Default signin.Config.SessionTTL's.
	SessionTTL time.Duration
	// SessionRefresh is how old a browser session's roles may get before
	// they are read again from the issuer with the session's refresh token
	// (NOTIFY_SESSION_REFRESH; see signin.Config.RefreshInterval): on the
	// session's next use, and for sessions with open streams by a sweep
	// that makes their streams reconnect when the roles changed. Only
	// sessions whose sign-in got a refresh token (OIDC_SCOPES with
	// offline_access at Hydra and Dex) are refreshed. Default
	// signin.Config.RefreshInterval's; negative turns it off
	// (NOTIFY_SESSION_REFRESH=0).
	SessionRefresh time.Duration
	// AllowedOrigins may call from a browser with credentials (NOTIFY_ALLOWED_ORIGINS).
	AllowedOrigins []string
	// MaxStreams caps the streams of this node (NOTIFY_MAX_STREAMS); beyond it 503. Default 10000.
	MaxStreams int
	// MaxStreamsPerUser caps one user's streams on this node (NOTIFY_MAX_STREAMS_PER_USER); beyond it 429. Default 20.
	MaxStreamsPerUser int
	// PublishRate and PublishBurst limit each ordinary user's publishing
	// (the test action; NOTIFY_PUBLISH_RATE per second,
	// NOTIFY_PUBLISH_BURST). Defaults httpapi.Config's.
	PublishRate  float64
	PublishBurst int
	// AdminPublishRate and AdminPublishBurst limit each caller holding an
	// admin role, services publishing for an application
	// (NOTIFY_ADMIN_PUBLISH_RATE per second, NOTIFY_ADMIN_PUBLISH_BURST).
	// Defaults httpapi.Config's.
	AdminPublishRate  float64
	AdminPublishBurst int
	// LoginRate and LoginBurst limit how many browser sign-ins one client
	// address may start (GET /auth/login; NOTIFY_LOGIN_RATE per second,
	// NOTIFY_LOGIN_BURST). Each start writes a row, so without a limit anyone
	// could fill the database. Defaults httpapi.Config's.
	LoginRate  float64
	LoginBurst int
	// MaxPendingSignIns caps the sign-ins in progress (started, not yet
	// finished or expired) across all addresses (NOTIFY_MAX_PENDING_SIGNINS);
	// beyond it /auth/login answers 503. Default
	// signin.Config.MaxPendingSignIns's.
	MaxPendingSignIns int
	// AuthPoolSize caps the separate database pool that sign-ins and session
	// cookie look-ups use, so unauthenticated traffic can never take the
	// connections the worker and the feed need. Default 3.
	AuthPoolSize int32
	// AuthStatementTimeout bounds every statement on that pool, and each
	// sign-in or session look-up as a whole; past it the request gets 503
	// (NOTIFY_AUTH_DB_TIMEOUT). Default 2s.
	AuthStatementTimeout time.Duration
	// Retention keeps published notifications this long (NOTIFY_RETENTION).
	// Default retention.Config.Retention's.
	Retention time.Duration
	// RetentionInterval is how often retention runs. Default
	// retention.Config.Interval's.
	RetentionInterval time.Duration
	// DevAuth serves the embedded development issuer and trusts it (NOTIFY_DEV_AUTH).
	// Refused on a non-loopback address.
	DevAuth bool
	// NoMigrate skips applying migrations at start (--no-migrate).
	NoMigrate bool
	// MaxBodyBytes caps request bodies (NOTIFY_MAX_BODY_BYTES). Default
	// httpapi.Config.MaxBodyBytes's.
	MaxBodyBytes int64
	// RequestTimeout bounds every request except the event stream, from
	// its headers on: reading its body, the handler and writing the answer
	// (NOTIFY_REQUEST_TIMEOUT). A client that trickles a body is cut off
	// after it; the stream (GET /api/notifications/ws) is never cut by it.
	// Default httpapi.Config.RequestTimeout's.
	RequestTimeout time.Duration
	// PoolSize caps the database pool of the reads: stream openings,
	// replays, history, unread counts and the feed (its statements are
	// planned once per connection). Default 10. The queue workers have a
	// pool of their own, two connections per worker plus two (at least 4),
	// so a reconnect storm cannot take their connections.
	PoolSize int32
	// SnapshotWarnAge is how long a transaction snapshot may be held in the
	// database before /readyz notes it (NOTIFY_SNAPSHOT_WARN_AGE). It never
	// makes the node unready: vacuum falls behind, delivery goes on.
	// Default 5m.
	SnapshotWarnAge time.Duration
	// ShutdownTimeout bounds a graceful stop (NOTIFY_SHUTDOWN_TIMEOUT),
	// the drain of its streams included, which it may cut short. Default
	// 10s, docker stop's grace period.
	ShutdownTimeout time.Duration
	// Logger receives everything. Default slog.Default().
	Logger *slog.Logger
}

// split reports whether the session-scoped work has a connection string of
// its own, DATABASE_URL then being a transaction pooler.
func (c Config) split() bool { return c.DatabaseDirectURL != c.DatabaseURL }

// queuePoolSize is the size of the pool the queue workers (a connection to
// claim and publish, one for the busy mark) and the rest share.
func (c Config) queuePoolSize() int32 {
	return int32(max(4, 2*c.Workers+2))
}

// WithDefaults returns c with every unset field defaulted. Each default is
// written once: the process's own here, the rest in the WithDefaults of the
// component the field is handed to, read from there. So a defaulted Config
// shows what runs, and the flags (cmd/notifyd) take their defaults from
// Config{}.WithDefaults().
func (c Config) WithDefaults() Config {
	c.DatabaseDirectURL = cmp.Or(c.DatabaseDirectURL, c.DatabaseURL)
	c.Addr = cmp.Or(c.Addr, "127.0.0.1:8080")
	c.Workers = cmp.Or(c.Workers, 1)
	c.MaxStreams = cmp.Or(c.MaxStreams, 10000)
	c.MaxStreamsPerUser = cmp.Or(c.MaxStreamsPerUser, 20)
	c.AuthPoolSize = cmp.Or(c.AuthPoolSize, 3)
	c.AuthStatementTimeout = cmp.Or(c.AuthStatementTimeout, 2*time.Second)
	c.SnapshotWarnAge = cmp.Or(c.SnapshotWarnAge, 5*time.Minute)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	api := httpapi.Config{}.WithDefaults()
	if len(c.AdminRoles) == 0 {
		c.AdminRoles = api.AdminRoles
	}
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, api.MaxBodyBytes)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, api.RequestTimeout)
	c.PublishRate = cmp.Or(c.PublishRate, api.PublishRate)
	c.PublishBurst = cmp.Or(c.PublishBurst, api.PublishBurst)
	c.AdminPublishRate = cmp.Or(c.AdminPublishRate, api.AdminPublishRate)
	c.AdminPublishBurst = cmp.Or(c.AdminPublishBurst, api.AdminPublishBurst)
	c.LoginRate = cmp.Or(c.LoginRate, api.LoginRate)
	c.LoginBurst = cmp.Or(c.LoginBurst, api.LoginBurst)

	si := signin.Config{}.WithDefaults()
	if len(c.Scopes) == 0 {
		c.Scopes = si.Scopes
	}
	c.SessionTTL = cmp.Or(c.SessionTTL, si.SessionTTL)
	c.SessionRefresh = cmp.Or(c.SessionRefresh, si.RefreshInterval)
	c.MaxPendingSignIns = cmp.Or(c.MaxPendingSignIns, si.MaxPendingSignIns)

	ret := retention.Config{}.WithDefaults()
	c.Retention = cmp.Or(c.Retention, ret.Retention)
	c.RetentionInterval = cmp.Or(c.RetentionInterval, ret.Interval)

	c.ReplicaWait = cmp.Or(c.ReplicaWait, postgres.ReplicaConfig{}.WithDefaults().Wait)

	oidc := auth.Config{}.WithDefaults()
	c.OIDC.RolesClaim = cmp.Or(c.OIDC.RolesClaim, oidc.RolesClaim)
	c.OIDC.UserClaim = cmp.Or(c.OIDC.UserClaim, oidc.UserClaim)
	c.OIDC.NameClaim = cmp.Or(c.OIDC.NameClaim, oidc.NameClaim)
	c.OIDC.KeyRefetchCooldown = cmp.Or(c.OIDC.KeyRefetchCooldown, oidc.KeyRefetchCooldown)

	// The worker's ID stays unset: each worker of the process gets its own.
	w := worker.Config{}.WithDefaults()
	c.Worker.PollInterval = cmp.Or(c.Worker.PollInterval, w.PollInterval)
	c.Worker.BatchSize = cmp.Or(c.Worker.BatchSize, w.BatchSize)

	c.Stream = c.Stream.WithDefaults()
	return c
}

// Validate names the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.DatabaseURL == "":
		return fmt.Errorf("DATABASE_URL is required")
	case c.MaxAttempts != 0 && postgres.CheckMaxAttempts(c.MaxAttempts) != nil:
		return fmt.Errorf("NOTIFY_MAX_ATTEMPTS: %w", postgres.CheckMaxAttempts(c.MaxAttempts))
	case c.AuthPoolSize < 1:
		return fmt.Errorf("AuthPoolSize %d must be at least 1", c.AuthPoolSize)
	case c.AuthStatementTimeout < time.Millisecond:
		return fmt.Errorf("NOTIFY_AUTH_DB_TIMEOUT %v must be at least 1ms", c.AuthStatementTimeout)
	case c.ReplicaWait < 0:
		return fmt.Errorf("NOTIFY_REPLICA_WAIT %v must not be negative", c.ReplicaWait)
	case c.RequestTimeout < 0:
		return fmt.Errorf("NOTIFY_REQUEST_TIMEOUT %v must be positive", c.RequestTimeout)
	case !c.DevAuth && c.OIDC.IssuerURL == "" && c.OIDC.JWKSURL == "":
		return fmt.Errorf("OIDC_ISSUER_URL (or OIDC_JWKS_URL) is required (or NOTIFY_DEV_AUTH=1 for local development)")
	case !c.DevAuth && c.OIDC.Audience == "" && c.OIDC.JWKSURL == "":
		return fmt.Errorf("OIDC_AUDIENCE is required with OIDC_ISSUER_URL")
	}
	if c.DevAuth {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return fmt.Errorf("NOTIFY_ADDR %q: %w", c.Addr, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("NOTIFY_DEV_AUTH is on but NOTIFY_ADDR %q is not a loopback address: the development issuer signs any identity and must never be reachable from elsewhere", c.Addr)
		}
	}
	if err := c.Stream.Validate(); err != nil {
		return err
	}
	return nil
}
