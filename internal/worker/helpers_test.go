package worker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/notifyd/notifyd/internal/listener"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestMain fails the package if a worker or listener goroutine outlives the
// tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger sends the worker's log to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startWorker runs a new worker until the returned stop is called (or the
// test ends); stop waits for Run to return and checks its error.
func startWorker(t *testing.T, q *postgres.Queue, cfg Config) (*Worker, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w, err := New(q, cfg)
	if err != nil {
		t.Fatalf("new worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker %s: Run returned %v", cfg.ID, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("worker %s did not stop within 15s of its context ending", cfg.ID)
		}
	})
	t.Cleanup(stop)
	return w, stop
}

// listenForRings runs a listener on url until the test ends, calling ring
// for each insert trigger's NOTIFY, and returns once it is connected.
func listenForRings(t *testing.T, url string, ring func()) {
	t.Helper()
	lis, err := listener.New(listener.Config{URL: url, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	lis.Handle("notify_queue", func(string) { ring() })
	connected := make(chan struct{})
	lis.OnConnect(sync.OnceFunc(func() { close(connected) }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = lis.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("listener did not connect")
	}
}

// queueState summarises the queue and the stream after a run.
type queueState struct {
	Pending, Processing, Sent, Failed int64
	Seqs, DistinctSeqs, MaxSeq, Head  int64
	Busy                              int64
}

func readQueueState(t *testing.T, ctx context.Context, pool *pgxpool.Pool) queueState {
	t.Helper()
	var s queueState
	err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM notify.queue_items WHERE status = 'pending'),
			(SELECT count(*) FROM notify.queue_items WHERE status = 'processing'),
			(SELECT count(*) FROM notify.queue_items WHERE status = 'sent'),
			(SELECT count(*) FROM notify.queue_items WHERE status = 'failed'),
			(SELECT count(seq) FROM notify.notifications),
			(SELECT count(DISTINCT seq) FROM notify.notifications),
			(SELECT coalesce(max(seq), 0) FROM notify.notifications),
			(SELECT last_seq FROM notify.stream_head),
			(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
			   AND classid = 1852797545::oid AND objid = 2::oid AND objsubid = 2
			   AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).
		Scan(&s.Pending, &s.Processing, &s.Sent, &s.Failed, &s.Seqs, &s.DistinctSeqs, &s.MaxSeq, &s.Head, &s.Busy)
	if err != nil {
		t.Fatalf("read queue state: %v", err)
	}
	return s
}

// insert adds n notifications "<prefix> 1".."<prefix> n" in one statement.
func insert(t *testing.T, ctx context.Context, pool *pgxpool.Pool, n int, prefix string) {
	t.Helper()
	pgtest.Exec(t, ctx, pool, `INSERT INTO notify.notifications (message) SELECT $1 || ' ' || g FROM generate_series(1, $2::int) g`, prefix, n)
}
