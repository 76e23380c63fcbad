package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/feed"
	"github.com/notifyd/notifyd/internal/httpapi"
	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/inboxsync"
	"github.com/notifyd/notifyd/internal/listener"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/retention"
	"github.com/notifyd/notifyd/internal/signin"
	"github.com/notifyd/notifyd/internal/stream"
)

// The steps of Start, in the order it takes them. Each builds one part of
// the server: the running App keeps what Shutdown needs, parts what only
// the later steps do.

// parts are what Start's steps build for each other.
type parts struct {
	ln        net.Listener
	sessions  *postgres.Sessions // on the auth pool
	notes     *postgres.Notifications
	inbox     *postgres.Inbox
	queue     *postgres.Queue
	feed      *feed.Feed
	inboxSync *inboxsync.Sync
	lis       *listener.Listener
	flow      *signin.Flow // nil without browser sign-in
	api       *httpapi.API
}

// openPools opens the three pools (see App) and notes what a pooler in
// front of them costs.
func (a *App) openPools(ctx context.Context, p *parts) error {
	cfg := a.cfg
	poolers, err := detectPoolers(ctx, cfg)
	if err != nil {
		return err
	}
	// The queue pool is on the direct connection: the workers' busy marks
	// are session advisory locks, and the migrations take goose's session
	// lock. Its size is fixed (queuePoolSize), so pooling would save little.
	// Its connections hand out seqs: each checks first that the database
	// has not gone back in time under us (a restore, a failover).
	if a.pool, err = postgres.OpenPool(ctx, cfg.DatabaseDirectURL, postgres.PoolConfig{MaxConns: cfg.queuePoolSize(), Pooled: poolers.direct,
		AfterConnect: postgres.HistoryHook(cfg.Logger)}); err != nil {
		return err
	}
	if a.readPool, err = postgres.OpenPool(ctx, cfg.DatabaseURL, postgres.PoolConfig{MaxConns: cfg.PoolSize, GenericPlans: true, Pooled: poolers.db}); err != nil {
		return err
	}
	if a.authPool, err = openAuthPool(ctx, cfg, poolers.db); err != nil {
		return err
	}
	if poolers.db {
		notePooler(ctx, cfg, a.readPool)
	}
	p.sessions = postgres.NewSessions(a.authPool).WithTimeout(cfg.AuthStatementTimeout + authTimeoutMargin)
	return nil
}

// migrate brings the schema up to date and keeps the reader that
// readiness asks whether it still is.
func (a *App) migrate(ctx context.Context) error {
	if err := migrateAndConfigure(ctx, a.pool, a.cfg); err != nil {
		return err
	}
	mig, err := postgres.NewSchemaReader(a.pool)
	if err != nil {
		return err
	}
	a.migrator = mig
	return nil
}

// connectReplica opens DATABASE_REPLICA_URL when set. After the
// migrations: its fences read notify.histories.
func (a *App) connectReplica(ctx context.Context) error {
	var err error
	a.replica, err = openReplica(ctx, a.cfg, a.readPool, func(read, source, reason string) {
		a.metrics.ReplicaReads.WithLabelValues(read, source, reason).Inc()
	})
	return err
}

// listen takes the HTTP address now, so that the development issuer and
// the sign-in know the server's own URL (port 0 included).
func (a *App) listen(p *parts) error {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another notifyd running? set NOTIFY_ADDR)", a.cfg.Addr, err)
	}
	p.ln, a.addr = ln, ln.Addr().String()
	return nil
}

// newStores returns the database's stores, reading from the replica when
// there is one, and the metrics that count the queue.
func (a *App) newStores(p *parts) {
	p.notes, p.inbox = postgres.NewNotifications(a.readPool), postgres.NewInbox(a.readPool)
	if a.replica != nil {
		p.notes, p.inbox = p.notes.WithReplica(a.replica), p.inbox.WithReplica(a.replica)
	}
	p.queue = postgres.NewQueue(a.pool)
	a.metrics = metrics.New(p.queue)
}

// newStreams builds the delivery side: the hub, the stream server on it,
// the feed that fills it, and the inbox sync that tells it of read state.
func (a *App) newStreams(p *parts) error {
	a.hub = hub.New(hub.Config{MaxSubscribers: a.cfg.MaxStreams, MaxPerUser: a.cfg.MaxStreamsPerUser})
	streamCfg := a.cfg.Stream
	streamCfg.Logger = a.cfg.Logger
	streamCfg.Observer = streamObserver(a.metrics)
	streams, err := stream.NewServer(a.hub, p.notes, streamCfg)
	if err != nil {
		return err
	}
	a.streams = streams.WithInbox(p.inbox)
	p.feed = feed.New(p.notes, a.hub, feed.Config{Logger: a.cfg.Logger, SetAside: func() { a.metrics.SetAside.WithLabelValues("feed").Inc() }})
	streams.WithLivePosition(p.feed.Position)
	p.inboxSync = inboxsync.New(p.inbox, a.hub, a.cfg.Logger)
	return nil
}

// streamObserver counts the streams' openings, closes and writes in m.
func streamObserver(m *metrics.Metrics) stream.Observer {
	return stream.Observer{
		Opened: func() { m.StreamsOpened.Inc(); m.StreamsOpen.Inc() },
		Closed: func(reason hub.Reason, _ time.Duration) {
			m.StreamsOpen.Dec()
			m.StreamsClosed.WithLabelValues(string(reason)).Inc()
			if reason == hub.ReasonSlow {
				m.SlowStreamsDropped.Inc()
			}
		},
		Written:   func(n int) { m.Delivered.Add(float64(n)) },
		Replayed:  func(n int) { m.Replayed.Add(float64(n)) },
		Resumed:   func(source string) { m.StreamResumes.WithLabelValues(source).Inc() },
		Delivered: func(oldest time.Time) { m.EndToEndLatency.Observe(time.Since(oldest).Seconds()) },
	}
}

// ringReadTimeout bounds a read on the listener's connection after a ring
// (feed.RungReading): a handful of rows by primary key range, normally
// under a millisecond; past it the feed reads them on its own.
const ringReadTimeout = time.Second

// newListener builds the process's one LISTEN connection and routes each
// channel to the part it wakes. The workers it wakes are built next; it
// runs only once everything is (runBackground).
func (a *App) newListener(p *parts) error {
	lis, err := listener.New(listener.Config{URL: a.cfg.DatabaseDirectURL, Logger: a.cfg.Logger, OnReconnect: a.metrics.ListenerReconnects.Inc})
	if err != nil {
		return err
	}
	p.lis = lis
	if a.replica == nil { // see feed.Offer
		lis.HandleOnConn("notify_published", func(ctx context.Context, conn *pgx.Conn, payload string) {
			ctx, cancel := context.WithTimeout(ctx, ringReadTimeout)
			defer cancel()
			p.feed.RungReading(ctx, payload, func(ctx context.Context, after int64, limit int) ([]notify.Notification, bool, error) {
				ns, bad, _, err := postgres.PublishedOn(ctx, conn, after, limit)
				return ns, len(bad) == 0, err
			})
		})
	} else {
		lis.Handle("notify_published", p.feed.Rung)
	}
	lis.Handle("notify_queue", func(string) { a.workers.wake() })
	lis.Handle(postgres.SessionChannel, func(payload string) {
		a.hub.CloseSessions(postgres.SessionIDs(payload), hub.ReasonLogout)
	})
	// A session's roles changed (a refresh, an admin's UPDATE): its streams
	// here reconnect with the new ones. Asked of the database, so a stream
	// opened with the new roles before the announcement arrived stays.
	lis.Handle(postgres.SessionChangedChannel, func(payload string) {
		go a.sessionsChanged(p.sessions, postgres.SessionIDs(payload))
	})
	lis.Handle(inboxsync.Channel, p.inboxSync.Receive)
	lis.OnConnect(func() { p.feed.Wake(); a.workers.wake() })
	// Sessions ended while the listener was down were announced to no one.
	lis.OnConnectContext(func(ctx context.Context) {
		if n, err := a.hub.CloseEndedSessions(ctx, p.sessions.LiveSessions); err != nil {
			a.cfg.Logger.WarnContext(ctx, "streams of ended sessions may stay open until the next reconnect", "err", err)
		} else if n > 0 {
			a.cfg.Logger.InfoContext(ctx, "closed the streams of sessions ended while the listener was down", "streams", n)
		}
	})
	return nil
}

// newWorkers builds the queue workers (started by runBackground).
func (a *App) newWorkers(ctx context.Context, p *parts) error {
	var err error
	hooks := workerHooks(a.metrics)
	if a.replica == nil { // see feed.Offer
		hooks.Sent = func(ns []notify.Notification) { p.feed.OfferBatch(context.WithoutCancel(ctx), ns) }
	}
	a.workers, err = newWorkerSet(p.queue, a.cfg, hooks)
	return err
}

// newAPI builds the HTTP API: token verification (at the embedded
// development issuer with DevAuth), the browser sign-in and the handlers.
func (a *App) newAPI(ctx context.Context, p *parts) error {
	cfg := a.cfg
	oidc, mounts, err := a.identityProvider(ctx)
	if err != nil {
		return err
	}
	verifier, err := auth.NewVerifier(oidc)
	if err != nil {
		return err
	}
	if p.flow, err = newSignIn(cfg, oidc, verifier, p.sessions, a.addr); err != nil {
		return err
	}
	ready := readiness(readinessDeps{pool: a.pool, pooler: pooledPool(cfg, a.readPool), mig: a.migrator, queue: p.queue, lis: p.lis, fd: p.feed, replica: a.replica},
		cfg.SnapshotWarnAge, cfg.Logger)
	deps := httpapi.Deps{Auth: verifier, Notifications: p.notes, Queue: p.queue, Streams: a.streams,
		Ready: ready, Mounts: mounts, SignIn: p.flow, Metrics: a.metrics, Inbox: p.inbox, InboxSync: p.inboxSync}
	if a.replica == nil { // see feed.Offer
		deps.Sent = func(n notify.Notification) { p.feed.Offer(context.WithoutCancel(ctx), n) }
	}
	p.api, err = httpapi.New(deps,
		httpapi.Config{AdminRoles: cfg.AdminRoles, MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout, NodeID: a.workers.nodeID, Logger: cfg.Logger,
			AllowedOrigins: cfg.AllowedOrigins, PublishRate: cfg.PublishRate, PublishBurst: cfg.PublishBurst,
			AdminPublishRate: cfg.AdminPublishRate, AdminPublishBurst: cfg.AdminPublishBurst, TrustedProxies: cfg.TrustedProxies,
			LoginRate: cfg.LoginRate, LoginBurst: cfg.LoginBurst})
	return err
}

// identityProvider is the OIDC configuration tokens are verified against,
// with the handlers to mount: cfg.OIDC, or with DevAuth the embedded
// development issuer, mounted at devIssuerPath.
func (a *App) identityProvider(ctx context.Context) (auth.Config, map[string]http.Handler, error) {
	mounts := map[string]http.Handler{}
	oidc := a.cfg.OIDC
	if a.cfg.DevAuth {
		dev, err := newDevIssuer(ctx, a.pool, "http://"+a.addr, a.cfg.Logger)
		if err != nil {
			return auth.Config{}, nil, err
		}
		mounts[devIssuerPath] = dev.Handler()
		oidc.IssuerURL, oidc.Audience = dev.URL(), dev.ClientID()
		a.cfg.Logger.Info("development sign-in is ON: tokens from the embedded issuer are trusted", "issuer", dev.URL())
	}
	oidc.Logger = a.cfg.Logger
	return oidc, mounts, nil
}

// runBackground starts the loops that run until Shutdown: the listener,
// the feed, the streams' heartbeats, the replica's health, session
// refreshes, retention, the snooze waker and the workers.
func (a *App) runBackground(ctx context.Context, p *parts) {
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.goBackground(func() { _ = p.lis.Run(bgCtx) })
	a.goBackground(func() { _ = p.feed.Run(bgCtx) })
	a.goBackground(func() { a.streams.Run(bgCtx) })
	if a.replica != nil {
		a.goBackground(func() { a.replica.Run(bgCtx) })
	}
	if p.flow != nil && p.flow.Refreshes() {
		a.goBackground(func() { p.flow.RunRefresh(bgCtx, a.hub) })
	}
	janitor := retention.New(p.notes, postgres.NewSessions(a.pool), retention.Config{Retention: a.cfg.Retention, Interval: a.cfg.RetentionInterval, Logger: a.cfg.Logger})
	a.goBackground(func() { janitor.Run(bgCtx) })
	a.goBackground(func() { p.inboxSync.RunWaker(bgCtx, inboxsync.WakeInterval) })
	a.workers.start(context.WithoutCancel(ctx))
}

// serve starts answering HTTP on the address listen took.
func (a *App) serve(p *parts) {
	// No ReadTimeout or WriteTimeout: they would hold for the stream too.
	// Request bodies and answers are bounded per request instead
	// (RequestTimeout; see httpapi's deadlines).
	a.httpSrv = &http.Server{Handler: p.api.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: nil}
	go func() { a.serveErr <- a.httpSrv.Serve(p.ln) }()
	a.cfg.Logger.Info("notifyd listening", "addr", a.addr, "workers", len(a.workers.workers))
}

// release closes what the steps of a failed Start opened: the address
// first, then the pools.
func (a *App) release(p *parts) {
	if p.ln != nil {
		p.ln.Close()
	}
	for _, pool := range []*pgxpool.Pool{a.pool, a.readPool, a.authPool} {
		if pool != nil {
			pool.Close()
		}
	}
	if a.replica != nil {
		a.replica.Close()
	}
}
