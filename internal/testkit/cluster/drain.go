package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// WaitDrained waits until the queue holds no pending or processing item:
// every notification committed so far is published (or failed).
func WaitDrained(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		// EXISTS, not count(*): polled while a backlog drains, it must not
		// compete with the worker for the database.
		var busy bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notify.queue_items WHERE status IN ('pending', 'processing'))`).Scan(&busy)
		if err != nil {
			return fmt.Errorf("read queue backlog: %w", err)
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue still holds pending or processing items after %s", timeout)
		}
		sleep(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// PublishSentinel inserts a notification to everyone and returns its seq
// once it is published. Sent after the load has drained, it is the last
// notification of a run: a reader that has received it has received
// everything it is going to.
func PublishSentinel(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) (int64, error) {
	var id string
	if err := pool.QueryRow(ctx, `INSERT INTO notify.notifications (message, module) VALUES ('sentinel', 'load') RETURNING id::text`).Scan(&id); err != nil {
		return 0, fmt.Errorf("insert sentinel: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var seq *int64
		if err := pool.QueryRow(ctx, `SELECT seq FROM notify.notifications WHERE id = $1`, id).Scan(&seq); err != nil {
			return 0, fmt.Errorf("read sentinel: %w", err)
		}
		if seq != nil {
			return *seq, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("sentinel not published after %s", timeout)
		}
		sleep(ctx, 10*time.Millisecond)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

// Head is the last published seq.
func Head(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var seq int64
	if err := pool.QueryRow(ctx, `SELECT last_seq FROM notify.stream_head`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read stream head: %w", err)
	}
	return seq, nil
}
