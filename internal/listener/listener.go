// Package listener holds a process's one LISTEN connection to PostgreSQL.
//
// NOTIFY is a doorbell, not a mailbox: payloads are tiny (a seq, or nothing),
// and anything sent while the connection is down is lost. So the listener
// runs every OnConnect hook after each (re)connect, once LISTEN is in place:
// that is where the feed and the workers catch up from the tables.
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
}

// Handler receives one notification's payload. It must not block for long:
// it runs on the listener's goroutine.
type Handler func(payload string)

// Listener is a dedicated LISTEN connection with reconnects.
type Listener struct {
	cfg       Config
	mu        sync.Mutex
	handlers  map[string][]Handler
	onConnect []func(context.Context)
	connected atomic.Bool
	started   atomic.Bool
}

// New returns a listener; register handlers, then Run it.
func New(cfg Config) (*Listener, error) {
	if cfg.URL == "" {
		return nil, errors.New("listener: URL is required")
	}
	cfg.PingInterval = cmp.Or(cfg.PingInterval, 15*time.Second)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Listener{cfg: cfg, handlers: map[string][]Handler{}}, nil
}

// Handle registers h for channel. Call before Run.
func (l *Listener) Handle(channel string, h Handler) {
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

// Connected reports whether the LISTEN connection is up (for readiness).
func (l *Listener) Connected() bool { return l.connected.Load() }

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
	conn, err := pgx.Connect(ctx, l.cfg.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	l.mu.Lock()
	channels := make([]string, 0, len(l.handlers))
	for ch := range l.handlers {
		channels = append(channels, ch)
	}
	hooks := append([]func(context.Context){}, l.onConnect...)
	l.mu.Unlock()
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
	for _, fn := range hooks {
		fn(ctx)
	}
	for {
		waitCtx, cancel := context.WithTimeout(ctx, l.cfg.PingInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			l.dispatch(n.Channel, n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
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

func (l *Listener) dispatch(channel, payload string) {
	l.mu.Lock()
	hs := l.handlers[channel]
	l.mu.Unlock()
	for _, h := range hs {
		h(payload)
	}
}
