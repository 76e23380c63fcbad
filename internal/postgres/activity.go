package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// wakeLock is the advisory lock key (two int4s) that notify.wake_worker()
// holds shared until its transaction commits.
const wakeLockClass, wakeLockObject = 1852797545, 1

// MarkBusy records that workerID is draining the queue until `until`; while
// it is, inserts skip their NOTIFY wake-up.
func (q *Queue) MarkBusy(ctx context.Context, workerID string, ttl time.Duration) error {
	_, err := q.pool.Exec(ctx, `INSERT INTO notify.worker_activity (worker_id, busy_until)
		VALUES ($1, now() + $2::interval)
		ON CONFLICT (worker_id) DO UPDATE SET busy_until = EXCLUDED.busy_until`, workerID, ttl)
	if err != nil {
		return fmt.Errorf("mark worker busy: %w", interpretError(err))
	}
	return nil
}

// MarkIdle removes workerID from the busy workers and then waits until every
// transaction that saw it busy (and so did not ring) has committed. After it
// returns, a claim sees all of those inserts; later inserts ring.
func (q *Queue) MarkIdle(ctx context.Context, workerID string) error {
	if _, err := q.pool.Exec(ctx, `DELETE FROM notify.worker_activity WHERE worker_id = $1`, workerID); err != nil {
		return fmt.Errorf("mark worker idle: %w", interpretError(err))
	}
	if _, err := q.pool.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, wakeLockClass, wakeLockObject); err != nil {
		return fmt.Errorf("wait for in-flight inserts: %w", interpretError(err))
	}
	return nil
}

// SetMaxAttempts makes n the attempt limit of new queue items: it is the
// column default of queue_items.max_attempts, which the insert trigger
// leaves to apply. The DDL runs only when the default differs, so nodes
// starting with the same setting take no lock.
func (q *Queue) SetMaxAttempts(ctx context.Context, n int) error {
	var current string
	err := q.pool.QueryRow(ctx, `SELECT COALESCE(pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = 'notify.queue_items'::regclass AND a.attname = 'max_attempts'`).Scan(&current)
	if err != nil {
		return fmt.Errorf("read max attempts: %w", interpretError(err))
	}
	if current == strconv.Itoa(n) {
		return nil
	}
	// DDL takes no parameters; n is an integer we formatted ourselves.
	if _, err := q.pool.Exec(ctx, `ALTER TABLE notify.queue_items ALTER COLUMN max_attempts SET DEFAULT `+strconv.Itoa(n)); err != nil {
		return fmt.Errorf("store max attempts: %w", interpretError(err))
	}
	return nil
}

// QueueCounts is the number of queue items in each status.
type QueueCounts struct {
	Pending, Processing, Sent, Failed int64
	// OldestPending is the creation time of the oldest pending item (zero if none).
	OldestPending time.Time
}

// Counts reads the queue's counts by status. Pending, processing and failed
// are counted through their partial indexes; sent, which is the whole
// retained history, is not counted row by row but derived from the stream
// head (published seqs still retained), which is exact unless rows were
// deleted by hand.
func (q *Queue) Counts(ctx context.Context) (QueueCounts, error) {
	var c QueueCounts
	var oldest *time.Time
	err := q.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM notify.queue_items WHERE status = 'pending'),
			(SELECT count(*) FROM notify.queue_items WHERE status = 'processing'),
			(SELECT GREATEST(last_seq - truncated_before, 0) FROM notify.stream_head),
			(SELECT count(*) FROM notify.queue_items WHERE status = 'failed'),
			(SELECT min(created_at) FROM notify.queue_items WHERE status = 'pending')`).
		Scan(&c.Pending, &c.Processing, &c.Sent, &c.Failed, &oldest)
	if err != nil {
		return QueueCounts{}, fmt.Errorf("count queue items: %w", interpretError(err))
	}
	if oldest != nil {
		c.OldestPending = *oldest
	}
	return c, nil
}

// QueueGauges counts the items that are waiting or stuck (pending,
// processing, failed: each through its partial index, never a scan of the
// sent history) and the age of the oldest pending item.
func (q *Queue) QueueGauges(ctx context.Context) (map[string]int64, time.Duration, error) {
	var pending, processing, failed int64
	var age float64
	err := q.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM notify.queue_items WHERE status = 'pending'),
			(SELECT count(*) FROM notify.queue_items WHERE status = 'processing'),
			(SELECT count(*) FROM notify.queue_items WHERE status = 'failed'),
			COALESCE((SELECT extract(epoch FROM now() - min(created_at)) FROM notify.queue_items WHERE status = 'pending'), 0)`).
		Scan(&pending, &processing, &failed, &age)
	if err != nil {
		return nil, 0, fmt.Errorf("read queue gauges: %w", interpretError(err))
	}
	return map[string]int64{"pending": pending, "processing": processing, "failed": failed},
		time.Duration(age * float64(time.Second)), nil
}
