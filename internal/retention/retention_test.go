package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/retention"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestPassDeletesInBatchesAndKeepsFailures: old published notifications go,
// in batches of BatchSize; recent ones, failed and pending ones stay; the
// stream head records what was truncated.
func TestPassDeletesInBatchesAndKeepsFailures(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	db := pgtest.NewQueued(t)
	ctx := context.Background()
	q := postgres.NewQueue(db.Pool)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO notify.notifications (message) SELECT 'old' || g FROM generate_series(1, 25) g`); err != nil {
		t.Fatal(err)
	}
	claims, err := q.Claim(ctx, "w", 100)
	if err != nil || len(claims) != 25 {
		t.Fatalf("claim: %d %v", len(claims), err)
	}
	if _, _, _, err := q.Publish(ctx, "w", claims); err != nil {
		t.Fatal(err)
	}
	// 25 published 40 days ago; then 5 recent published, 1 failed and 1 pending, all old too.
	if _, err := db.Pool.Exec(ctx, `UPDATE notify.notifications SET created_at = now() - interval '41 days', published_at = now() - interval '40 days'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO notify.notifications (message) SELECT 'new' || g FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	claims, _ = q.Claim(ctx, "w", 100)
	if _, _, _, err := q.Publish(ctx, "w", claims); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO notify.notifications (message, created_at) VALUES ('failed', now() - interval '90 days'), ('pending', now() - interval '90 days');
		UPDATE notify.queue_items SET status = 'failed', last_error = 'boom' WHERE notification_id = (SELECT id FROM notify.notifications WHERE message = 'failed')`); err != nil {
		t.Fatal(err)
	}

	var batches []int64
	j := retention.New(postgres.NewNotifications(db.Pool), postgres.NewSessions(db.Pool), retention.Config{
		Retention: 30 * 24 * time.Hour, BatchSize: 10, Pause: time.Millisecond, Batch: func(n int64) { batches = append(batches, n) }})
	n, err := j.Pass(ctx)
	if err != nil || n != 25 {
		t.Fatalf("pass deleted %d, %v; want 25", n, err)
	}
	if len(batches) != 3 || batches[0] != 10 || batches[1] != 10 || batches[2] != 5 {
		t.Errorf("batches %v, want [10 10 5]", batches)
	}
	var left, items int
	var truncated int64
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM notify.notifications), (SELECT count(*) FROM notify.queue_items),
		(SELECT truncated_before FROM notify.stream_head)`).Scan(&left, &items, &truncated); err != nil {
		t.Fatal(err)
	}
	if left != 7 || items != 7 || truncated != 25 {
		t.Errorf("left %d notifications and %d items, truncated_before %d; want 7, 7, 25", left, items, truncated)
	}
	if n, _ := j.Pass(ctx); n != 0 {
		t.Errorf("second pass deleted %d", n)
	}
}

// TestPassStopsItsMarkBelowALockedRow: a row someone holds locked is skipped
// (retention never waits), and the retention floor stops below it, so the
// next pass, which starts above the floor, still deletes it. Starting above
// the floor is what keeps a pass from walking the index entries of every row
// already deleted while a snapshot is held; the floor must never pass a row
// that is still there.
func TestPassStopsItsMarkBelowALockedRow(t *testing.T) {
	t.Parallel()
	db := pgtest.NewQueued(t)
	ctx := context.Background()
	q := postgres.NewQueue(db.Pool)
	pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) SELECT 'old' || g FROM generate_series(1, 10) g`)
	if _, err := q.ClaimAndPublish(ctx, 100, time.Minute); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.notifications SET published_at = now() - interval '40 days'`)

	// Another session holds seq 4 locked.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM notify.notifications WHERE seq = 4 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	j := retention.New(postgres.NewNotifications(db.Pool), postgres.NewSessions(db.Pool), retention.Config{
		Retention: 30 * 24 * time.Hour, BatchSize: 100, Pause: time.Millisecond})
	if n, err := j.Pass(ctx); err != nil || n != 9 {
		t.Fatalf("pass with seq 4 locked deleted %d, %v; want the 9 others", n, err)
	}
	// Resumes are told about everything deleted (up to 10); the next batch
	// starts above 3, below the row left.
	var tb, floor int64
	if err := db.Pool.QueryRow(ctx, `SELECT truncated_before, (SELECT floor FROM notify.retention_marks ORDER BY seq DESC LIMIT 1)
		FROM notify.stream_head`).Scan(&tb, &floor); err != nil {
		t.Fatal(err)
	}
	if tb != 10 || floor != 3 {
		t.Fatalf("truncated_before %d, floor %d with seq 4 still there; want 10 and 3", tb, floor)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := j.Pass(ctx); err != nil || n != 1 {
		t.Fatalf("pass after the lock went deleted %d, %v; want seq 4", n, err)
	}
	var left int64
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM notify.notifications), (SELECT truncated_before FROM notify.stream_head),
		(SELECT floor FROM notify.retention_marks ORDER BY seq DESC LIMIT 1)`).Scan(&left, &tb, &floor); err != nil {
		t.Fatal(err)
	}
	if left != 0 || tb != 10 || floor < 4 {
		t.Fatalf("left %d, truncated_before %d, floor %d; want 0, 10 and at least 4", left, tb, floor)
	}
	if marks := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.retention_marks`); marks != 1 {
		t.Errorf("%d retention marks kept, want only the newest", marks)
	}
}
