package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/localdb"
)

// common holds the settings every command shares.
type common struct {
	databaseURL string
	directURL   string // DATABASE_DIRECT_URL; bound by bindDirect for the commands that use it
	logFormat   string
	logLevel    string
}

func (c *common) bind(s *settings) {
	s.String(&c.databaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL connection string; empty: the local default")
	s.String(&c.logFormat, "log-format", "NOTIFY_LOG_FORMAT", "text", "log format: text or json")
	s.String(&c.logLevel, "log-level", "NOTIFY_LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

// bindDirect binds DATABASE_DIRECT_URL, for the commands that do
// session-scoped work: serve, worker and migrate.
func (c *common) bindDirect(s *settings) {
	s.String(&c.directURL, "database-direct-url", "DATABASE_DIRECT_URL", "",
		"direct session connection for LISTEN, migrations and the queue workers, so that DATABASE_URL may be PgBouncer in transaction mode; empty: DATABASE_URL")
}

// bindReplica binds the read replica's settings, for serve.
func bindReplica(s *settings, cfg *app.Config) {
	s.String(&cfg.DatabaseReplicaURL, "database-replica-url", "DATABASE_REPLICA_URL", "",
		"streaming replica for stream replays and history pages, read once it has replayed far enough (else the primary); empty: none")
	s.Duration(&cfg.ReplicaWait, "replica-wait", "NOTIFY_REPLICA_WAIT", app.Config{}.WithDefaults().ReplicaWait,
		"how long a read waits for the replica to replay far enough before it reads from the primary")
}

// direct makes the command's logger (writing to stderr) and resolves the
// connection string for session-scoped work alone (migrate, worker):
// DATABASE_DIRECT_URL when set, untouched (DATABASE_URL may well be a
// pooler this command has no use for), else what database resolves. Call
// release when done.
func (c *common) direct(ctx context.Context, stderr io.Writer) (log *slog.Logger, url string, release func(), err error) {
	if log, err = c.logger(stderr); err != nil {
		return nil, "", nil, err
	}
	if c.directURL != "" {
		return log, c.directURL, func() {}, nil
	}
	db, err := c.database(ctx, log)
	if err != nil {
		return nil, "", nil, err
	}
	return log, db.URL, func() { _ = db.Close(context.WithoutCancel(ctx)) }, nil
}

// open makes the command's logger (writing to stderr) and resolves its
// database with it (see database). Close the database when done.
func (c *common) open(ctx context.Context, stderr io.Writer) (*slog.Logger, localdb.Database, error) {
	log, err := c.logger(stderr)
	if err != nil {
		return nil, localdb.Database{}, err
	}
	db, err := c.database(ctx, log)
	return log, db, err
}

func (c *common) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError{fmt.Sprintf("log level %q: want debug, info, warn or error", c.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("log format %q: want text or json", c.logFormat)}
}

// database resolves DATABASE_URL or the local default.
func (c *common) database(ctx context.Context, log *slog.Logger) (localdb.Database, error) {
	db, err := localdb.Resolve(ctx, localdb.Options{URL: c.databaseURL, Logger: log})
	if err != nil {
		return localdb.Database{}, err
	}
	if db.Source != "DATABASE_URL" {
		log.Info("using the local default database", "source", db.Source)
	}
	return db, nil
}

// bindServer binds the settings of serve and worker into cfg. Their
// defaults are app.Config's, which reads each from the component that uses
// it: none is written here.
func bindServer(s *settings, cfg *app.Config) {
	d := app.Config{}.WithDefaults()
	s.String(&cfg.Addr, "addr", "NOTIFY_ADDR", d.Addr, "listen address")
	s.Duration(&cfg.Stream.HeartbeatInterval, "heartbeat-interval", "NOTIFY_HEARTBEAT_INTERVAL", d.Stream.HeartbeatInterval, "heartbeat on every stream")
	s.Duration(&cfg.Stream.ConnTimeout, "conn-timeout", "NOTIFY_CONN_TIMEOUT", d.Stream.ConnTimeout, "close a stream with no successful write for this long")
	s.Duration(&cfg.Stream.CleanupInterval, "cleanup-interval", "NOTIFY_CLEANUP_INTERVAL", d.Stream.CleanupInterval, "sweep of dead streams")
	s.Duration(&cfg.Stream.OpeningTimeout, "opening-timeout", "NOTIFY_OPENING_TIMEOUT", d.Stream.OpeningTimeout,
		"a stream's whole opening (database reads and replay) at most; then it is closed and the client resumes from what it got")
	s.Duration(&cfg.SnapshotWarnAge, "snapshot-warn-age", "NOTIFY_SNAPSHOT_WARN_AGE", d.SnapshotWarnAge,
		"/readyz notes (without failing) a transaction snapshot held longer than this, which keeps vacuum from removing dead rows")
	s.Int(&cfg.Stream.MaxOpening, "max-opening", "NOTIFY_MAX_OPENING", d.Stream.MaxOpening,
		"streams doing their opening database work at once (the rest wait their turn), so a reconnect storm leaves the worker and the feed their connections")
	s.Duration(&cfg.Stream.ReconnectSpread, "reconnect-spread", "NOTIFY_RECONNECT_SPREAD", d.Stream.ReconnectSpread,
		"at shutdown, the streams are handed back over at least this long: each stays live until its own moment, then is told to reconnect at once")
	s.Int(&cfg.Stream.DrainRate, "drain-rate", "NOTIFY_DRAIN_RATE", d.Stream.DrainRate,
		"at shutdown, streams handed back to the other nodes a second at most (as the shutdown timeout allows), so they can open them without a queue")
	s.Duration(&cfg.ShutdownTimeout, "shutdown-timeout", "NOTIFY_SHUTDOWN_TIMEOUT", d.ShutdownTimeout,
		"a graceful stop's limit, its streams' drain included; keep it below the orchestrator's grace period (docker stop: 10s, Kubernetes: 30s)")
	s.Duration(&cfg.Worker.PollInterval, "poll-interval", "NOTIFY_POLL_INTERVAL", d.Worker.PollInterval, "worker re-checks the queue even without a wake-up")
	bindMaxAttempts(s, &cfg.MaxAttempts, "the attempt limit this node expects: it seeds a database this start creates, and must otherwise be the database's, which "+
		"is one setting for every node (a node never rewrites it; change it with migrate up); unset: the database's")
	s.Int(&cfg.Workers, "workers", "NOTIFY_WORKERS", d.Workers, "queue workers in this process (-1: none)")
	s.Int(&cfg.Worker.BatchSize, "batch-size", "NOTIFY_BATCH_SIZE", d.Worker.BatchSize, "queue items claimed and published per batch")
	s.List(&cfg.AdminRoles, "admin-roles", "NOTIFY_ADMIN_ROLES", strings.Join(d.AdminRoles, ","), "roles allowed to publish to others, broadcast and see full status")
	s.String(&cfg.OIDC.IssuerURL, "oidc-issuer-url", "OIDC_ISSUER_URL", "", "OpenID Connect issuer that signs bearer tokens")
	s.String(&cfg.OIDC.Audience, "oidc-audience", "OIDC_AUDIENCE", "", "expected token audience (the client id)")
	s.String(&cfg.OIDC.RolesClaim, "oidc-roles-claim", "OIDC_ROLES_CLAIM", d.OIDC.RolesClaim, "claim holding the roles; a dotted path reaches nested claims")
	s.String(&cfg.OIDC.UserClaim, "oidc-user-claim", "OIDC_USER_CLAIM", d.OIDC.UserClaim, "claim that is the user id notifications target (preferred_username, email, …); a token without it is refused")
	s.String(&cfg.OIDC.NameClaim, "oidc-name-claim", "OIDC_NAME_CLAIM", d.OIDC.NameClaim, "claim shown as the user's name on the test page; the user id when a token lacks it")
	s.String(&cfg.OIDC.JWKSURL, "oidc-jwks-url", "OIDC_JWKS_URL", "", "verify bearer tokens against this key set without discovery (asymmetric keys only); issuer and audience are checked when set")
	s.Fields(&cfg.Scopes, "oidc-scopes", "OIDC_SCOPES", strings.Join(d.Scopes, " "), "scopes asked for at browser sign-in, space separated (Dex, Okta: add groups)")
	s.Prefixes(&cfg.TrustedProxies, "trusted-proxies", "NOTIFY_TRUSTED_PROXIES", "", "reverse proxies (CIDRs or addresses, comma separated) whose X-Forwarded-For/-Proto/-Host are believed; they also name the sign-in callback's origin when OIDC_REDIRECT_URL is unset")
	s.String(&cfg.ClientSecret, "oidc-client-secret", "OIDC_CLIENT_SECRET", "", "client secret for the browser sign-in (empty for a public client using PKCE)")
	s.String(&cfg.RedirectURL, "oidc-redirect-url", "OIDC_REDIRECT_URL", "", "sign-in callback registered at the issuer; required for browser sign-in (with --dev-auth: this server's own /auth/callback)")
	s.Duration(&cfg.SessionTTL, "session-ttl", "NOTIFY_SESSION_TTL", d.SessionTTL, "how long a browser session lasts")
	s.DurationOrOff(&cfg.SessionRefresh, "session-refresh", "NOTIFY_SESSION_REFRESH", d.SessionRefresh,
		"read a browser session's roles again from the issuer with its refresh token once they are this old (sessions signed in with offline_access in OIDC_SCOPES); streams whose roles changed reconnect")
	s.List(&cfg.AllowedOrigins, "allowed-origins", "NOTIFY_ALLOWED_ORIGINS", "", "origins allowed to call from a browser with credentials (CORS)")
	s.Int(&cfg.MaxStreams, "max-streams", "NOTIFY_MAX_STREAMS", d.MaxStreams, "streams this node serves at most (then 503)")
	s.Int(&cfg.MaxStreamsPerUser, "max-streams-per-user", "NOTIFY_MAX_STREAMS_PER_USER", d.MaxStreamsPerUser, "streams one user may hold on this node (then 429)")
	s.Float(&cfg.PublishRate, "publish-rate", "NOTIFY_PUBLISH_RATE", d.PublishRate, "notifications one ordinary user may publish a second over HTTP (the test action; then 429); negative: no limit")
	s.Int(&cfg.PublishBurst, "publish-burst", "NOTIFY_PUBLISH_BURST", d.PublishBurst, "burst allowed above the publish rate")
	s.Float(&cfg.AdminPublishRate, "admin-publish-rate", "NOTIFY_ADMIN_PUBLISH_RATE", d.AdminPublishRate, "notifications one caller holding an admin role (a service) may publish a second over HTTP (then 429); negative: no limit")
	s.Int(&cfg.AdminPublishBurst, "admin-publish-burst", "NOTIFY_ADMIN_PUBLISH_BURST", d.AdminPublishBurst, "burst allowed above the admin publish rate")
	s.Float(&cfg.LoginRate, "login-rate", "NOTIFY_LOGIN_RATE", d.LoginRate, "browser sign-ins one client address may start a second (then 429); negative: no limit")
	s.Int(&cfg.LoginBurst, "login-burst", "NOTIFY_LOGIN_BURST", d.LoginBurst, "burst allowed above the sign-in rate")
	s.Int(&cfg.MaxPendingSignIns, "max-pending-signins", "NOTIFY_MAX_PENDING_SIGNINS", d.MaxPendingSignIns, "sign-ins in progress at most, from all addresses (then 503)")
	s.Duration(&cfg.AuthStatementTimeout, "auth-db-timeout", "NOTIFY_AUTH_DB_TIMEOUT", d.AuthStatementTimeout, "statement timeout of the separate pool for sign-ins and session cookies (then 503)")
	s.Duration(&cfg.OIDC.KeyRefetchCooldown, "jwks-refetch-cooldown", "NOTIFY_JWKS_REFETCH_COOLDOWN", d.OIDC.KeyRefetchCooldown, "least time between key set fetches caused by tokens with an unknown key id")
	s.Int64(&cfg.MaxBodyBytes, "max-body-bytes", "NOTIFY_MAX_BODY_BYTES", d.MaxBodyBytes, "largest request body accepted (then 413)")
	s.Duration(&cfg.RequestTimeout, "request-timeout", "NOTIFY_REQUEST_TIMEOUT", d.RequestTimeout, "longest a request other than the event stream may take, reading its body included (then cut)")
	s.Duration(&cfg.Retention, "retention", "NOTIFY_RETENTION", d.Retention, "how long published notifications are kept")
	s.Bool(&cfg.DevAuth, "dev-auth", "NOTIFY_DEV_AUTH", false, "serve and trust the embedded development issuer (loopback addresses only)")
}

// bindMaxAttempts binds NOTIFY_MAX_ATTEMPTS, the attempt limit new queue
// items get on every node (see postgres.Queue.MaxAttempts). Unset (0) by
// default: the database holds the value.
func bindMaxAttempts(s *settings, p *int, usage string) {
	s.Int(p, "max-attempts", "NOTIFY_MAX_ATTEMPTS", 0, "attempts before a queue item is failed: "+usage)
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var c common
	var cfg app.Config
	s := newSettings("serve", getenv, stderr)
	c.bind(s)
	c.bindDirect(s)
	bindServer(s, &cfg)
	bindReplica(s, &cfg)
	s.Bool(&cfg.NoMigrate, "no-migrate", "", false, "do not apply pending migrations at start")
	if err := s.parseNoArgs(args); err != nil {
		return helpOK(err)
	}
	log, db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	cfg.DatabaseURL, cfg.DatabaseDirectURL, cfg.Logger = db.URL, c.directURL, log
	a, err := app.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.DevAuth {
		fmt.Fprintf(stderr, "\nnotifyd is running at %s with development sign-in.\n"+
			"  page:   %s/test-notifications (sign in with any user id; tick ADMIN for the admin view)\n"+
			"  token:  TOKEN=$(go run ./cmd/notifyd dev-token --addr %s --sub alice --roles ADMIN)\n"+
			"  stream: curl -N -H \"Authorization: Bearer $TOKEN\" %s/api/notifications/ws\n"+
			"  send:   psql \"%s\" -c \"INSERT INTO notify.notifications (message) VALUES ('hello')\"\n\n",
			a.URL(), a.URL(), a.Addr(), a.URL(), db.URL)
	}
	return a.Wait(ctx)
}

func runWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var c common
	var cfg app.Config
	s := newSettings("worker", getenv, stderr)
	c.bind(s)
	c.bindDirect(s)
	bindServer(s, &cfg)
	if err := s.parseNoArgs(args); err != nil {
		return helpOK(err)
	}
	// The standalone worker's work is all session-scoped (the listener,
	// the migrations and the workers' busy marks), so with
	// DATABASE_DIRECT_URL set it uses that alone.
	log, url, release, err := c.direct(ctx, stderr)
	if err != nil {
		return err
	}
	defer release()
	cfg.DatabaseURL, cfg.Logger = url, log
	return app.RunWorker(ctx, cfg)
}

func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}
