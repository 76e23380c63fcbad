package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The advisory lock keys (two int4s) of the insert doorbell
// (notify.wake_worker): producers hold (class, inFlight) shared until they
// commit; every busy worker holds (class, busy) shared on a connection of
// its own, and a producer rings only if it can take it exclusively.
const (
	wakeLockClass          = 1852797545
	wakeLockInFlight int32 = 1
	wakeLockBusy     int32 = 2
)

// BusyMark is a worker's busy mark: while it is held, inserts skip their
// NOTIFY wake-up (a NOTIFY serializes commits). It is a session advisory
// lock on a connection taken from the pool for as long as the worker is
// busy, so it ends with that connection: a worker that dies while busy
// (process killed, connection cut) frees the doorbell at once.
type BusyMark struct {
	conn *pgxpool.Conn
}

// MarkBusy takes the busy mark. It waits for producers that are ringing
// right now to commit (their NOTIFYs are about to wake workers anyway).
func (q *Queue) MarkBusy(ctx context.Context) (*BusyMark, error) {
	conn, err := q.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("mark worker busy: %w", interpretError(err))
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock_shared($1, $2)`, wakeLockClass, wakeLockBusy); err != nil {
		conn.Release()
		return nil, fmt.Errorf("mark worker busy: %w", interpretError(err))
	}
	return &BusyMark{conn: conn}, nil
}

// MarkIdle gives up the busy mark and then waits until every transaction
// that may have seen a worker busy (and so did not ring) has committed.
// After it returns, a claim sees all of those inserts; later inserts ring
// unless another worker is busy. If the mark's connection fails, the
// connection is closed, which ends the mark all the same.
func (q *Queue) MarkIdle(ctx context.Context, m *BusyMark) error {
	if m != nil && m.conn != nil {
		if _, err := m.conn.Exec(ctx, `SELECT pg_advisory_unlock_shared($1, $2)`, wakeLockClass, wakeLockBusy); err != nil {
			_ = m.conn.Conn().Close(context.WithoutCancel(ctx)) // the session, and its lock, end here
		}
		m.conn.Release()
		m.conn = nil
	}
	if _, err := q.pool.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, wakeLockClass, wakeLockInFlight); err != nil {
		return fmt.Errorf("wait for in-flight inserts: %w", interpretError(err))
	}
	return nil
}

// maxAttemptsLimit is the most attempts a queue item may be given: past a
// few dozen, back-off alone keeps a broken item retrying for days.
const maxAttemptsLimit = 100

// CheckMaxAttempts says whether n may be the attempt limit of queue items.
func CheckMaxAttempts(n int) error {
	if n < 1 || n > maxAttemptsLimit {
		return fmt.Errorf("max attempts %d must be between 1 and %d", n, maxAttemptsLimit)
	}
	return nil
}

// MaxAttempts reads the attempt limit new queue items get: the column
// default of queue_items.max_attempts, which the insert trigger leaves to
// apply. It is one setting for every node of the database (3 from the
// initial migration), changed only on purpose (SetMaxAttempts), never by a
// node starting with another configuration.
func (q *Queue) MaxAttempts(ctx context.Context) (int, error) {
	var n int
	err := q.pool.QueryRow(ctx, `SELECT pg_get_expr(d.adbin, d.adrelid)::integer
		FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
		WHERE d.adrelid = 'notify.queue_items'::regclass AND a.attname = 'max_attempts'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read max attempts: %w", interpretError(err))
	}
	return n, nil
}

// SetMaxAttempts makes n the attempt limit of new queue items, for every
// node (see MaxAttempts). Items already queued keep theirs.
func (q *Queue) SetMaxAttempts(ctx context.Context, n int) error {
	if err := CheckMaxAttempts(n); err != nil {
		return err
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
