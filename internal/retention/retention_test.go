package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/pgtest"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/retention"
)

// TestPassDeletesInBatchesAndKeepsFailures: old published notifications go,
// in batches of BatchSize; recent ones, failed and pending ones stay; the
// stream head records what was truncated.
func TestPassDeletesInBatchesAndKeepsFailures(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
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
