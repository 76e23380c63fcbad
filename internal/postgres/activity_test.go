package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// expectSentinelFirst proves a negative: nothing was sent on the listened
// channels by transactions committed before the sentinel.
func expectSentinelFirst(t *testing.T, ctx context.Context, pool *pgxpool.Pool, lis *pgx.Conn) {
	t.Helper()
	sentinel(t, ctx, pool)
	if n := nextNotification(t, lis, 5*time.Second); n.Payload != "sentinel" {
		t.Fatalf("got %s %q before the sentinel", n.Channel, n.Payload)
	}
}

func expectWake(t *testing.T, lis *pgx.Conn) {
	t.Helper()
	if n := nextNotification(t, lis, 5*time.Second); n.Channel != "notify_queue" || n.Payload != "" {
		t.Fatalf("got %s %q, want a wake-up on notify_queue", n.Channel, n.Payload)
	}
}

// waitingForWakeLock counts sessions of this database waiting for the
// wake_worker advisory lock.
func waitingForWakeLock(t *testing.T, ctx context.Context, pool *pgxpool.Pool) int64 {
	t.Helper()
	return pgtest.Scalar[int64](t, ctx, pool, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND NOT granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid = 1852797545::oid AND objid = 1::oid AND objsubid = 2`)
}

// busyMarks counts the workers marked busy in this database.
func busyMarks(t *testing.T, ctx context.Context, pool *pgxpool.Pool) int64 {
	t.Helper()
	return pgtest.Scalar[int64](t, ctx, pool, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND classid = 1852797545::oid AND objid = 2::oid AND objsubid = 2
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
}

func TestWakeWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("no busy worker: one wake-up per committed transaction", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewQueued(t)
		lis := listen(t, ctx, db.URL, "notify_queue")

		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{100, 5} {
			if _, err := tx.Exec(ctx, `INSERT INTO notify.notifications (message) SELECT 'bulk ' || g FROM generate_series(1, $1::int) g`, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		expectWake(t, lis)
		expectSentinelFirst(t, ctx, db.Pool, lis)

		// Two transactions ring twice; a rolled-back one does not ring.
		for range 2 {
			pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) VALUES ('single')`)
		}
		tx, err = db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ('rolled back')`); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		expectWake(t, lis)
		expectWake(t, lis)
		expectSentinelFirst(t, ctx, db.Pool, lis)
	})

	t.Run("a busy worker silences the wake-up; a worker whose connection dies frees it at once", func(t *testing.T) {
		t.Parallel()
		db, q := pgtest.NewQueue(t)
		lis := listen(t, ctx, db.URL, "notify_queue")

		mark, err := q.MarkBusy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) SELECT 'quiet ' || g FROM generate_series(1, 100) g`)
		expectSentinelFirst(t, ctx, db.Pool, lis)

		// The worker dies while busy (its connection is cut): the very next
		// insert rings, without waiting for any time-to-live.
		pgtest.Exec(t, ctx, db.Pool, `SELECT pg_terminate_backend(pid, 5000) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND classid = 1852797545::oid AND objid = 2::oid
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		if n := busyMarks(t, ctx, db.Pool); n != 0 {
			t.Fatalf("%d busy marks after the worker's connection died", n)
		}
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) VALUES ('after the crash')`)
		expectWake(t, lis)
		expectSentinelFirst(t, ctx, db.Pool, lis)
		if err := q.MarkIdle(ctx, mark); err != nil { // on the dead connection: no harm
			t.Fatalf("MarkIdle after the connection died: %v", err)
		}

		// MarkIdle gives the mark up.
		if mark, err = q.MarkBusy(ctx); err != nil {
			t.Fatal(err)
		}
		if n := busyMarks(t, ctx, db.Pool); n != 1 {
			t.Fatalf("%d busy marks while busy, want 1", n)
		}
		if err := q.MarkIdle(ctx, mark); err != nil {
			t.Fatal(err)
		}
		if n := busyMarks(t, ctx, db.Pool); n != 0 {
			t.Fatalf("%d busy marks after MarkIdle", n)
		}
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) VALUES ('after idle')`)
		expectWake(t, lis)
	})

	// The producer's commit is in flight while the worker goes idle: MarkIdle
	// must not return before it commits, so the worker's last look sees it.
	markIdleWaits := func(t *testing.T, silenced bool, hold func(pgx.Tx) error) {
		db, q := pgtest.NewQueue(t)
		lis := listen(t, ctx, db.URL, "notify_queue")
		mark, err := q.MarkBusy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ('in flight')`); err != nil {
			t.Fatal(err)
		}
		if err := hold(tx); err != nil {
			t.Fatal(err)
		}

		idle := make(chan error, 1)
		go func() { idle <- q.MarkIdle(ctx, mark) }()
		testkit.Eventually(t, 10*time.Second, "MarkIdle to wait for the producer's lock", func() bool {
			return waitingForWakeLock(t, ctx, db.Pool) == 1
		})
		select {
		case err := <-idle:
			t.Fatalf("MarkIdle returned (%v) while a producer that may have seen the worker busy had not committed", err)
		default:
		}
		if n := busyMarks(t, ctx, db.Pool); n != 0 {
			t.Fatalf("worker still marked busy while MarkIdle waits")
		}

		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-idle:
			if err != nil {
				t.Fatalf("MarkIdle: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("MarkIdle did not return after the producer committed")
		}
		// The worker's last look, right after MarkIdle, finds the insert.
		if claims, err := q.Claim(ctx, "w", 10); err != nil || len(claims) != 1 {
			t.Fatalf("claim after MarkIdle: %v, %v; want the in-flight insert", claims, err)
		}
		if silenced {
			expectSentinelFirst(t, ctx, db.Pool, lis)
		} else {
			expectWake(t, lis)
		}
	}

	t.Run("MarkIdle waits for a producer holding the wake lock", func(t *testing.T) {
		t.Parallel()
		// The trigger runs at commit and sees the worker idle by then: it rings.
		markIdleWaits(t, false, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared(1852797545, 1)`)
			return err
		})
	})

	t.Run("MarkIdle waits for a producer whose trigger saw the worker busy", func(t *testing.T) {
		t.Parallel()
		// Firing the deferred trigger now, while the worker is busy, is the
		// race the lock exists for: the trigger stays silent, holds the lock
		// to commit, and does not run again at commit.
		markIdleWaits(t, true, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SET CONSTRAINTS notify.notifications_wake_worker IMMEDIATE`)
			return err
		})
	})
}
