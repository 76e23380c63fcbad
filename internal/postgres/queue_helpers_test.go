package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind (the
// concurrent claimers, publishers and listeners started here).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// insertNotifications inserts n notifications with messages "<message> 1"
// ... "<message> n" in one statement and returns their queue item ids in order.
func insertNotifications(t *testing.T, ctx context.Context, pool *pgxpool.Pool, n int, message string) []int64 {
	t.Helper()
	// Queued for the workers whatever the database's setting (the private
	// clusters' databases keep the default, publishing at commit).
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('notify.publish_at_commit', 'off', true)`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO notify.notifications (message)
			SELECT $1 || ' ' || g FROM generate_series(1, $2::int) g`, message, n)
		return err
	})
	if err != nil {
		t.Fatalf("insert notifications: %v", err)
	}
	rows, err := pool.Query(ctx, `SELECT q.id FROM notify.queue_items q
		JOIN notify.notifications n ON n.id = q.notification_id
		WHERE starts_with(n.message, $1 || ' ') ORDER BY q.id`, message)
	if err != nil {
		t.Fatalf("read queue items: %v", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("read queue items: %v", err)
	}
	if len(ids) != n {
		t.Fatalf("inserted %d notifications, found %d queue items", n, len(ids))
	}
	return ids
}

// itemRow is a queue item as the tests look at it.
type itemRow struct {
	ID            int64
	Status        string
	Attempts      int
	MaxAttempts   int
	LockedBy      *string
	LockedAt      *time.Time
	LastError     *string
	NextAttemptAt time.Time
	UpdatedAt     time.Time
	SentAt        *time.Time
	Seq           *int64
	PublishedAt   *time.Time
}

func readItem(t *testing.T, ctx context.Context, pool *pgxpool.Pool, itemID int64) itemRow {
	t.Helper()
	var r itemRow
	err := pool.QueryRow(ctx, `SELECT q.id, q.status, q.attempts, q.max_attempts, q.locked_by, q.locked_at, q.last_error,
			q.next_attempt_at, q.updated_at, q.sent_at, n.seq, n.published_at
		FROM notify.queue_items q JOIN notify.notifications n ON n.id = q.notification_id WHERE q.id = $1`, itemID).
		Scan(&r.ID, &r.Status, &r.Attempts, &r.MaxAttempts, &r.LockedBy, &r.LockedAt, &r.LastError,
			&r.NextAttemptAt, &r.UpdatedAt, &r.SentAt, &r.Seq, &r.PublishedAt)
	if err != nil {
		t.Fatalf("read queue item %d: %v", itemID, err)
	}
	return r
}

// listen opens a dedicated connection listening on channels.
func listen(t *testing.T, ctx context.Context, url string, channels ...string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect listener: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			t.Fatalf("listen %s: %v", ch, err)
		}
	}
	return conn
}

// nextNotification returns the next notification on conn, failing the test
// after timeout.
func nextNotification(t *testing.T, conn *pgx.Conn, timeout time.Duration) *pgconn.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("no notification within %s", timeout)
		}
		t.Fatalf("wait for notification: %v", err)
	}
	return n
}

// sentinel sends NOTIFY notify_queue, 'sentinel' from a pooled connection.
// Notifications are delivered in commit order, so a listener that gets the
// sentinel first got nothing from transactions committed before it.
func sentinel(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	pgtest.Exec(t, ctx, pool, `NOTIFY notify_queue, 'sentinel'`)
}

// holdInTransaction runs sql in a transaction of its own connection and
// keeps it open until the returned function is called.
func holdInTransaction(t *testing.T, db *pgtest.DB, sql string) (release func()) {
	t.Helper()
	ctx := t.Context()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("%s: %v", sql, err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(context.Background())
		}
	}
	t.Cleanup(release)
	return release
}

// insertQueued inserts a notification left queued for the workers.
func insertQueued(t *testing.T, db *pgtest.DB, message string) {
	t.Helper()
	ctx := t.Context()
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL notify.publish_at_commit = off`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ($1)`, message)
		return err
	})
	if err != nil {
		t.Fatalf("insert %q queued: %v", message, err)
	}
}
