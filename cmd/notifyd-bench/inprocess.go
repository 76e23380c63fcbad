package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// audience is the client id the bench's issuer signs tokens for.
const audience = "notifyd-bench"

// producerApp is the application_name of every producer connection.
const producerApp = "notifyd-bench-producer"

// env is what every in-process phase runs against: the server (HTTP,
// streams, feed, listener and queue worker, all in this process, as
// `notifyd serve` runs them), a real OIDC issuer so streams authenticate
// the way they do in production, and an admin pool for the bench's own
// queries.
type env struct {
	bench
	db     *pgtest.Scratch
	app    *app.App
	iss    *cluster.Issuer
	admin  *pgxpool.Pool
	client *http.Client
}

// startEnv starts the issuer, then the server, which migrates the database.
func startEnv(ctx context.Context, b bench, db *pgtest.Scratch) (e *env, err error) {
	cfg := b.cfg
	e = &env{bench: b, db: db, client: &http.Client{Transport: &http.Transport{}}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.iss, err = cluster.StartIssuer(audience); err != nil {
		return nil, err
	}
	level := slog.LevelWarn
	if cfg.Verbose {
		level = slog.LevelInfo
	}
	e.app, err = app.Start(ctx, app.Config{DatabaseURL: db.URL, Addr: "127.0.0.1:0", Workers: cfg.ServerWorkers, PoolSize: int32(cfg.ServerPool),
		OIDC:   auth.Config{IssuerURL: e.iss.URL(), Audience: audience},
		Logger: slog.New(slog.NewTextHandler(b.stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		return nil, fmt.Errorf("start notifyd: %w", err)
	}
	e.admin, err = newPool(ctx, db.URL, 4, "notifyd-bench-admin")
	return e, err
}

// Close stops the server (which ends its streams), then the issuer.
func (e *env) Close() error {
	var err error
	if e.admin != nil {
		e.admin.Close()
	}
	if e.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = e.app.Shutdown(ctx)
	}
	if e.iss != nil {
		e.iss.Close()
	}
	e.client.CloseIdleConnections()
	return err
}

// reader is one user's stream on the in-process server, read as a
// well-behaved client would: when the server closes it (as "slow", when
// the client fell behind, say) it reconnects with Last-Event-ID and the
// server replays what it missed. Its reconnects are reported, since they
// are part of what the figures measured.
type reader struct {
	*cluster.Reader
	stop func()
}

// openReader opens a stream for user and returns once the server has sent
// "connected": from then on the stream is subscribed and misses nothing.
func (e *env) openReader(ctx context.Context, user string) (*reader, error) {
	tok, err := e.iss.Token(user, nil, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("sign token: %w", err)
	}
	r := cluster.NewReader(cluster.ReaderConfig{Client: e.client, Nodes: cluster.NewNodes([]string{e.app.URL()}), Token: tok,
		Start: -1, MaxBackoff: 5 * time.Second})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.Run(rctx) }()
	rd := &reader{Reader: r, stop: func() { cancel(); <-done }}
	select {
	case <-r.Connected():
		return rd, nil
	case <-time.After(30 * time.Second):
		err = errors.New("open stream: not connected within 30 s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	rd.stop()
	return nil, err
}

// drain waits until the stream has everything committed so far: a
// broadcast published after it (cluster.PublishSentinel) has arrived.
func (rd *reader) drain(ctx context.Context, e *env) (sentinel int64, err error) {
	if sentinel, err = cluster.PublishSentinel(ctx, e.admin, e.cfg.Timeout); err == nil {
		_, err = cluster.WaitFor(ctx, []*cluster.Reader{rd.Reader}, sentinel, e.cfg.Timeout)
	}
	return sentinel, err
}

// producersAndReader opens a pool of n producer connections and a stream
// for user, the two ends every in-process phase measures between.
func producersAndReader(ctx context.Context, e *env, user string, n int) (*pgxpool.Pool, *reader, func(), error) {
	pool, err := newPool(ctx, e.db.URL, n, producerApp)
	if err != nil {
		return nil, nil, nil, err
	}
	rd, err := e.openReader(ctx, user)
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	return pool, rd, func() { rd.stop(); pool.Close() }, nil
}

// committed is one insert: its id and the time right after its commit
// returned to the producer.
type committed struct {
	ID string
	At time.Time
}

// paceInserts runs total single-row autocommit inserts for user at rate
// per second from producers goroutines and returns each one's commit time.
// The k-th insert is due at start + k/rate whichever producer takes it, so
// a slow insert delays only itself; several producers let the rate hold
// when one insert stalls. done counts the commits as they happen.
func paceInserts(ctx context.Context, pool *pgxpool.Pool, user string, rate, total, producers int, done *atomic.Int64) ([]committed, error) {
	sent := make([][]committed, producers)
	err := slots(ctx, producers, time.Now().Add(20*time.Millisecond), time.Second/time.Duration(rate),
		func(k int64, _ time.Time) bool { return k < int64(total) }, func(ctx context.Context, p int, k int64) error {
			var id string
			if err := pool.QueryRow(ctx, `INSERT INTO notify.notifications (message, target_user_id, data)
				VALUES ('bench latency', $1, jsonb_build_object('i', $2::int)) RETURNING id`, user, k).Scan(&id); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			sent[p] = append(sent[p], committed{ID: id, At: time.Now()})
			done.Add(1)
			return nil
		})
	return slices.Concat(sent...), err
}

// receipts is, by notification id, when the stream first read each
// notification published after a head and when the worker's publish
// transaction started (published_at, which the database keeps as now() of
// that transaction).
type receipts struct{ read, published map[string]time.Time }

func readReceipts(ctx context.Context, e *env, rd *reader, head int64) (receipts, error) {
	r := receipts{read: map[string]time.Time{}, published: map[string]time.Time{}}
	feed, err := cluster.LoadFeed(ctx, e.admin, head)
	if err != nil {
		return r, err
	}
	seqs, at := rd.Received()
	for i, seq := range seqs {
		if p, ok := feed.Get(seq); ok {
			if _, dup := r.read[p.ID]; !dup {
				r.read[p.ID], r.published[p.ID] = time.Unix(0, at[i]), p.PublishedAt
			}
		}
	}
	return r, nil
}

// Stage is one part of the commit-to-receipt latency.
type Stage struct {
	Name    string        `json:"name"`
	Latency stats.Summary `json:"latency"`
}

// stages splits each commit-to-receipt latency at published_at: the
// first part is the queue (the wake-up or the worker's loop, and the
// claim); the second is the publish statement and its commit, then NOTIFY,
// the feed's read, the hub, the stream's write and the client. It compares
// the database's clock with this process's, so it is only meaningful when
// PostgreSQL runs on this machine; the report says so.
func (r receipts) stages(sent []committed) []Stage {
	var queue, rest []time.Duration
	for _, c := range sent {
		pub, ok1 := r.published[c.ID]
		got, ok2 := r.read[c.ID]
		if ok1 && ok2 {
			// Round(0) drops the monotonic reading: the database time is wall time.
			queue = append(queue, pub.Sub(c.At.Round(0)))
			rest = append(rest, got.Sub(pub))
		}
	}
	return []Stage{
		{Name: "commit -> publish transaction starts (queue: wake-up or worker loop, claim)", Latency: stats.Summarize(queue)},
		{Name: "publish starts -> client reads (publish + commit, NOTIFY, feed, hub, stream)", Latency: stats.Summarize(rest)},
	}
}
