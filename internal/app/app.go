package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/signin"
	"github.com/notifyd/notifyd/internal/stream"
)

// App is a running server.
type App struct {
	cfg      Config
	metrics  *metrics.Metrics
	migrator *postgres.Migrator
	pool     *pgxpool.Pool // the queue workers and everything else
	readPool *pgxpool.Pool // streams, replays, history, counts and the feed: generic plans
	authPool *pgxpool.Pool // sign-ins and session look-ups only; see openAuthPool
	hub      *hub.Hub
	streams  *stream.Server
	httpSrv  *http.Server
	addr     string
	workers  *workerSet
	cancel   context.CancelFunc // background loops (listener, feed, heartbeats)
	bg       sync.WaitGroup
	serveErr chan error
	stopOnce sync.Once
	stopErr  error

	// replica answers replays and history pages when it can
	// (DATABASE_REPLICA_URL); nil without one.
	replica *postgres.Replica
}

// Start opens the database, migrates, starts every component and listens.
// It returns once the server accepts connections. Each step builds one part
// (start.go); when one fails, what the earlier ones opened is closed.
func Start(ctx context.Context, cfg Config) (*App, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, serveErr: make(chan error, 1)}
	p := &parts{}
	ok := false
	defer func() {
		if !ok {
			a.release(p)
		}
	}()
	if err := a.openPools(ctx, p); err != nil {
		return nil, err
	}
	if err := a.migrate(ctx); err != nil {
		return nil, err
	}
	if err := a.connectReplica(ctx); err != nil {
		return nil, err
	}
	if err := a.listen(p); err != nil {
		return nil, err
	}
	a.newStores(p)
	if err := a.newStreams(p); err != nil {
		return nil, err
	}
	if err := a.newListener(p); err != nil {
		return nil, err
	}
	if err := a.newWorkers(ctx, p); err != nil {
		return nil, err
	}
	if err := a.newAPI(ctx, p); err != nil {
		return nil, err
	}
	// The feed knows where it starts before any stream is accepted.
	if err := p.feed.Start(ctx); err != nil {
		return nil, err
	}
	a.runBackground(ctx, p)
	a.serve(p)
	ok = true
	return a, nil
}

// newSignIn returns the browser sign-in, or nil when tokens are verified
// against OIDC_JWKS_URL alone (no issuer to sign in at). Without
// OIDC_REDIRECT_URL, trusted proxies name the callback's origin; failing
// those, development sign-in uses this server's own address.
func newSignIn(cfg Config, oidc auth.Config, verifier *auth.Verifier, sessions *postgres.Sessions, addr string) (*signin.Flow, error) {
	if oidc.IssuerURL == "" || oidc.Audience == "" {
		cfg.Logger.Info("browser sign-in is off: it needs OIDC_ISSUER_URL and OIDC_AUDIENCE; bearer tokens are verified against OIDC_JWKS_URL")
		return nil, nil
	}
	forwarded := cfg.RedirectURL == "" && len(cfg.TrustedProxies) > 0
	redirect := redirectURL(cfg, addr)
	if forwarded {
		redirect = ""
	}
	return signin.New(verifier, sessions, signin.Config{ClientID: oidc.Audience, ClientSecret: cfg.ClientSecret,
		RedirectURL: redirect, ForwardedOrigin: forwarded, Scopes: cfg.Scopes, SessionTTL: cfg.SessionTTL, RefreshInterval: cfg.SessionRefresh,
		Logger: cfg.Logger, MaxPendingSignIns: cfg.MaxPendingSignIns})
}

// poolers says which connection strings reach PostgreSQL through a
// transaction pooler, and so which pools must do without named prepared
// statements and startup parameters (postgres.PoolConfig.Pooled).
type poolers struct {
	db     bool // DATABASE_URL
	direct bool // DATABASE_DIRECT_URL
}

// detectPoolers takes DATABASE_URL for a transaction pooler when
// DATABASE_DIRECT_URL differs from it (that is what the setting is for), or
// when a pooler answers on it (postgres.BehindPooler): PgBouncer in session
// mode then loses only the prepared statements' reuse, while in transaction
// mode it would otherwise fail requests. A pooler on the direct URL is taken
// to be in session mode (LISTEN works only there; the listener checks) but
// gets the same treatment, which any pool mode accepts.
func detectPoolers(ctx context.Context, cfg Config) (poolers, error) {
	proxied, err := postgres.BehindPooler(ctx, cfg.DatabaseURL)
	if err != nil {
		return poolers{}, err
	}
	p := poolers{db: proxied || cfg.split(), direct: proxied}
	if cfg.split() {
		if p.direct, err = postgres.BehindPooler(ctx, cfg.DatabaseDirectURL); err != nil {
			return poolers{}, fmt.Errorf("DATABASE_DIRECT_URL: %w", err)
		}
	}
	switch {
	case cfg.split() && proxied:
		cfg.Logger.Info("DATABASE_URL is a connection pooler; LISTEN, migrations and the queue workers use DATABASE_DIRECT_URL")
	case cfg.split():
		cfg.Logger.Info("DATABASE_DIRECT_URL differs from DATABASE_URL: taking DATABASE_URL for a transaction pooler; " +
			"LISTEN, migrations and the queue workers use DATABASE_DIRECT_URL")
	case proxied:
		cfg.Logger.Warn("DATABASE_URL goes through a connection pooler and DATABASE_DIRECT_URL is not set: " +
			"LISTEN, migrations and the queue workers' session locks need a session of their own; " +
			"set DATABASE_DIRECT_URL to the database server itself unless the pooler is in session mode")
	}
	if p.direct && cfg.split() {
		cfg.Logger.Warn("DATABASE_DIRECT_URL goes through a connection pooler too: LISTEN and session locks work only in its session mode")
	}
	return p, nil
}

// notePooler warns when the pooled connections compile queries with JIT:
// the startup parameter that turns it off cannot pass a pooler, and on a
// large table JIT costs ~25 ms per query for ~0.2 ms of work.
func notePooler(ctx context.Context, cfg Config, pool *pgxpool.Pool) {
	var jit string
	if err := pool.QueryRow(ctx, "SELECT current_setting('jit')").Scan(&jit); err != nil {
		cfg.Logger.WarnContext(ctx, "read jit through the pooler", "err", err)
		return
	}
	if jit == "on" {
		cfg.Logger.WarnContext(ctx, "JIT is on for connections through the pooler (DATABASE_URL): "+
			"run ALTER ROLE <notifyd's role> SET jit = off (see README, Behind PgBouncer)")
	}
}

// pooledPool is the pool to ping for DATABASE_URL in readiness when it is
// not the direct connection's; nil when they are the same.
func pooledPool(cfg Config, readPool *pgxpool.Pool) *pgxpool.Pool {
	if cfg.split() {
		return readPool
	}
	return nil
}

// sessionsChanged closes this node's streams of the sessions in ids whose
// user or roles are no longer the database's, so they reconnect with the
// current ones. A failure is logged; the refresh sweep compares again.
func (a *App) sessionsChanged(sessions *postgres.Sessions, ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := a.hub.CloseChangedSessions(ctx, ids, sessions.Identities); err != nil {
		a.cfg.Logger.Warn("streams of sessions whose roles changed stay open until the next refresh sweep", "err", err)
	} else if n > 0 {
		a.cfg.Logger.Info("closed streams of sessions whose roles changed", "streams", n)
	}
}

func (a *App) goBackground(fn func()) {
	a.bg.Add(1)
	go func() { defer a.bg.Done(); fn() }()
}

// Addr is the address the server listens on (useful with port 0).
func (a *App) Addr() string { return a.addr }

// OpenStreams is the number of streams this process serves now.
func (a *App) OpenStreams() int { return a.hub.Len() }

// URL is the server's base URL.
func (a *App) URL() string { return "http://" + a.addr }

// Wait blocks until the HTTP server stops on its own (an error) or ctx ends,
// then shuts everything down.
func (a *App) Wait(ctx context.Context) error {
	select {
	case err := <-a.serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			_ = a.Shutdown(context.Background())
			return fmt.Errorf("http server: %w", err)
		}
	case <-ctx.Done():
	}
	return a.Shutdown(context.Background())
}

// Shutdown stops gracefully: no new connections; streams are told to come
// back (a status message, then close, so clients resume elsewhere); workers
// finish or release their claims; then the listener and the pool close.
func (a *App) Shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() { a.stopErr = a.shutdown(ctx) })
	return a.stopErr
}

func (a *App) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
	defer cancel()
	log := a.cfg.Logger
	log.Info("shutting down")
	done := make(chan error, 1)
	go func() { done <- a.httpSrv.Shutdown(ctx) }()
	// The listener is closed now; the feed still runs. Each stream stays
	// live until its own moment of the drain (at most NOTIFY_DRAIN_RATE
	// streams a second, over at least NOTIFY_RECONNECT_SPREAD, within this
	// stop's deadline) and is then told to come back at once: the other
	// nodes open the reconnects without a queue, and no client waits out a
	// random delay while notifications pile up (stream/drain.go).
	a.streams.Drain(ctx)
	var httpErr error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		// Streams opened while Shutdown was starting are told too.
		a.hub.CloseWhere(func(notify.Identity) bool { return true }, hub.ReasonShutdown)
		select {
		case httpErr = <-done:
			break wait
		case <-tick.C:
		}
	}
	if httpErr != nil {
		_ = a.httpSrv.Close()
	}
	a.workers.stop()
	a.cancel()
	a.bg.Wait()
	_ = a.migrator.Close()
	a.pool.Close()
	a.readPool.Close()
	a.authPool.Close()
	if a.replica != nil {
		a.replica.Close()
	}
	log.Info("stopped")
	if httpErr != nil {
		return fmt.Errorf("stop http server: %w", httpErr)
	}
	return nil
}
