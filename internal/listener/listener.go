// Package listener holds a process's one LISTEN connection to PostgreSQL.
//
// NOTIFY is a doorbell, not a mailbox: payloads are tiny (a seq, or nothing),
// and anything sent while the connection is down is lost. So the listener
// runs every OnConnect hook after each (re)connect, once LISTEN is in place:
// that is where the feed and the workers catch up from the tables.
//
// A LISTEN is only as good as the session it lives in. Behind a
// transaction-mode pooler (PgBouncer with pool_mode = transaction) the
// statement succeeds on whichever server connection the pooler lends for it
// and the notifications then go to that connection, not to us. So after
// every connect the listener sends itself a test notification from another
// connection and reports (Status) whether it came back: a listener that
// hears nothing is not connected in any way that matters.
package listener

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config tunes the listener.
type Config struct {
	// URL is the database connection string. Required.
	URL string
	// PingInterval: an idle connection is pinged this often to notice a
	// dead server. Default 15s.
	PingInterval time.Duration
	// MaxBackoff caps the reconnect delay. Default 5s.
	MaxBackoff time.Duration
	// Logger receives connection changes. Default slog.Default().
	Logger *slog.Logger
	// OnReconnect is called after every reconnect (not the first connect),
	// for metrics. Optional.
	OnReconnect func()
	// ProbeTimeout is how long the test notification sent after each
	// connect may take to come back before the connection is reported deaf.
	// Default 5s: a direct connection hears it within milliseconds.
	ProbeTimeout time.Duration
}

// ApplicationName is the listener connection's application_name, unless
// its URL names one.
const ApplicationName = "notifyd-listener"

// Handler receives one notification's payload. It must not block for long:
// it runs on the listener's goroutine.
type Handler func(payload string)

// ConnHandler is a Handler that may also read on the listener's connection,
// which is free while handlers run: its server process has just sent the
// notification and is awake, where a pooled connection's may have to be
// woken first. It must be brief (notifications wait meanwhile; none is
// lost), bound its queries with ctx, and leave the connection as it found it
// (no transaction, no LISTEN or setting of its own).
type ConnHandler func(ctx context.Context, conn *pgx.Conn, payload string)

// Listener is a dedicated LISTEN connection with reconnects.
type Listener struct {
	cfg       Config
	mu        sync.Mutex
	handlers  map[string][]ConnHandler
	onConnect []func(context.Context)
	connected atomic.Bool
	deaf      atomic.Bool // connected, but the last test notification never came back
	pooled    atomic.Bool // the connection's server process is not the one it announced
	started   atomic.Bool
}

// New returns a listener; register handlers, then Run it.
func New(cfg Config) (*Listener, error) {
	if cfg.URL == "" {
		return nil, errors.New("listener: URL is required")
	}
	cfg.PingInterval = cmp.Or(cfg.PingInterval, 15*time.Second)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 5*time.Second)
	cfg.ProbeTimeout = cmp.Or(cfg.ProbeTimeout, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Listener{cfg: cfg, handlers: map[string][]ConnHandler{}}, nil
}

// Handle registers h for channel. Call before Run.
func (l *Listener) Handle(channel string, h Handler) {
	l.HandleOnConn(channel, func(_ context.Context, _ *pgx.Conn, payload string) { h(payload) })
}

// HandleOnConn registers h for channel. Call before Run.
func (l *Listener) HandleOnConn(channel string, h ConnHandler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handlers[channel] = append(l.handlers[channel], h)
}

// OnConnect registers fn to run after every successful LISTEN, including the
// first. Call before Run.
func (l *Listener) OnConnect(fn func()) {
	l.OnConnectContext(func(context.Context) { fn() })
}

// OnConnectContext is OnConnect for hooks that do I/O of their own (a
// query, say): ctx ends when Run's does. Such a hook should be brief, since
// notifications wait while it runs; they are not lost meanwhile.
func (l *Listener) OnConnectContext(fn func(ctx context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onConnect = append(l.onConnect, fn)
}

// Status is what the listener knows about its connection, for readiness.
type Status struct {
	// Connected: LISTEN is in place on a live connection.
	Connected bool
	// Deaf: connected, but the test notification sent from another
	// connection after the connect did not come back within ProbeTimeout
	// (false while it is under way), so notifications
	// published elsewhere do not reach this node (and delivery waits for
	// the polls). The listener keeps probing and recovers on its own.
	Deaf bool
	// Pooled: the server process behind the connection is not the one the
	// connection announced when it opened, so a pooler or proxy sits in
	// between (PgBouncer, for one). A session-mode pooler keeps LISTEN
	// working; a transaction-mode pooler makes it deaf.
	Pooled bool
}

// Status reports the connection's state.
func (l *Listener) Status() Status {
	return Status{Connected: l.connected.Load(), Deaf: l.deaf.Load(), Pooled: l.pooled.Load()}
}

// Run keeps the connection up until ctx ends.
func (l *Listener) Run(ctx context.Context) error {
	if !l.started.CompareAndSwap(false, true) {
		return errors.New("listener: Run called twice")
	}
	backoff := time.Duration(0)
	first := true
	for ctx.Err() == nil {
		err := l.session(ctx, first)
		l.connected.Store(false)
		l.deaf.Store(false)
		if ctx.Err() != nil {
			break
		}
		first = false
		backoff = min(max(backoff*2, 50*time.Millisecond), l.cfg.MaxBackoff)
		delay := backoff/2 + rand.N(backoff/2+1)
		l.cfg.Logger.WarnContext(ctx, "listener connection lost; reconnecting", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// session connects, listens and dispatches until the connection fails.
func (l *Listener) session(ctx context.Context, first bool) error {
	cfg, err := pgx.ParseConfig(l.cfg.URL)
	if err != nil {
		return fmt.Errorf("parse the database URL: %w", err)
	}
	if _, named := cfg.RuntimeParams["application_name"]; !named {
		// How an admin (and a test) tells it apart in pg_stat_activity:
		// its last query is not always its LISTEN (see ConnHandler).
		cfg.RuntimeParams["application_name"] = ApplicationName
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	// Before LISTEN, so that LISTEN stays the connection's last statement
	// (what pg_stat_activity shows for it).
	pooled, err := behindPooler(ctx, conn)
	if err != nil {
		return err
	}
	l.pooled.Store(pooled)
	l.mu.Lock()
	channels := make([]string, 0, len(l.handlers)+1)
	for ch := range l.handlers {
		channels = append(channels, ch)
	}
	hooks := append([]func(context.Context){}, l.onConnect...)
	l.mu.Unlock()
	probe := newProbe()
	channels = append(channels, probe.channel)
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	l.connected.Store(true)
	if !first {
		l.cfg.Logger.InfoContext(ctx, "listener reconnected")
		if l.cfg.OnReconnect != nil {
			l.cfg.OnReconnect()
		}
	}
	runHooks := func() {
		for _, fn := range hooks {
			fn(ctx)
		}
	}
	runHooks()
	// Taken to hear until the probe says otherwise, so that a node is
	// ready as soon as LISTEN is in place, as before the probe existed.
	heard, err := l.probe(ctx, conn, probe)
	if err != nil {
		return err
	}
	if !heard {
		l.deaf.Store(true)
		l.warnDeaf(ctx, pooled)
	}
	for {
		waitCtx, cancel := context.WithTimeout(ctx, l.cfg.PingInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			if n.Channel != probe.channel {
				l.dispatch(ctx, conn, n.Channel, n.Payload)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && l.deaf.Load():
			// A deaf connection is probed again instead of pinged: the
			// probe pings too, and it notices when LISTEN works again.
			heard, err := l.probe(ctx, conn, probe)
			if err != nil {
				return err
			}
			if heard {
				l.deaf.Store(false)
				l.cfg.Logger.InfoContext(ctx, "listener hears notifications again")
				runHooks() // catch up with what went unheard
			}
		case errors.Is(err, context.DeadlineExceeded):
			pingCtx, cancel := context.WithTimeout(ctx, l.cfg.PingInterval)
			err = conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// warnDeaf says why live delivery has stopped and what to do about it.
func (l *Listener) warnDeaf(ctx context.Context, pooled bool) {
	if pooled {
		l.cfg.Logger.ErrorContext(ctx, "the LISTEN connection goes through a connection pooler that does not keep it "+
			"(PgBouncer in transaction mode?): notifications do not reach this node and delivery waits for the polls; "+
			"point DATABASE_DIRECT_URL at the database server itself", "probe_timeout", l.cfg.ProbeTimeout)
		return
	}
	l.cfg.Logger.ErrorContext(ctx, "the LISTEN connection did not hear a test notification: delivery waits for the polls "+
		"until it does", "probe_timeout", l.cfg.ProbeTimeout)
}

func (l *Listener) dispatch(ctx context.Context, conn *pgx.Conn, channel, payload string) {
	l.mu.Lock()
	hs := l.handlers[channel]
	l.mu.Unlock()
	for _, h := range hs {
		h(ctx, conn, payload)
	}
}
