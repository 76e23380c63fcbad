package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The statements behind the operator commands (`notifyd status`, `notifyd
// retry`): read-mostly views of the queue and the one repair people need,
// putting failed items back in line.

// IsSchemaMissing reports whether err says the notify schema or one of its
// tables does not exist, i.e. the database has not been migrated yet.
func IsSchemaMissing(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	// undefined_table, invalid_schema_name, undefined_function
	return pgErr.Code == "42P01" || pgErr.Code == "3F000" || pgErr.Code == "42883"
}

// ErrorCount is one distinct last_error among failed queue items.
type ErrorCount struct {
	// Error is the last_error text ("" for failed items that have none).
	Error string
	// Count is how many failed items share it.
	Count int64
	// Latest is when the most recent of them failed (its updated_at).
	Latest time.Time
}

// TopErrors returns the most frequent last_error values of failed items,
// most frequent first, at most limit of them.
func (q *Queue) TopErrors(ctx context.Context, limit int) ([]ErrorCount, error) {
	rows, err := q.pool.Query(ctx, `SELECT COALESCE(last_error, ''), count(*), max(updated_at)
		FROM notify.queue_items WHERE status = 'failed'
		GROUP BY 1 ORDER BY 2 DESC, 3 DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("top errors: %w", interpretError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ErrorCount, error) {
		var e ErrorCount
		err := row.Scan(&e.Error, &e.Count, &e.Latest)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("top errors: %w", interpretError(err))
	}
	return out, nil
}

// RetryFilter selects failed queue items. The selectors that are set must
// all match; All must be set when none is, so an empty filter can never
// select everything by accident.
type RetryFilter struct {
	// ItemIDs are queue item ids (queue_items.id).
	ItemIDs []int64
	// NotificationIDs are notification ids (uuids).
	NotificationIDs []string
	// ErrorLike is a case-insensitive LIKE pattern on last_error. Without a
	// % it matches anywhere in the error.
	ErrorLike string
	// Since keeps items that failed at or after this time (updated_at).
	Since time.Time
	// All selects every failed item.
	All bool
}

// ErrNoSelector: a RetryFilter that selects nothing and does not say All.
var ErrNoSelector = errors.New("no selector: give ids, an error pattern, a time, or All")

func (f RetryFilter) empty() bool {
	return len(f.ItemIDs) == 0 && len(f.NotificationIDs) == 0 && f.ErrorLike == "" && f.Since.IsZero()
}

// args are the parameters of retryWhere, in order.
func (f RetryFilter) args() []any {
	var like, since any
	if f.ErrorLike != "" {
		p := f.ErrorLike
		if !strings.Contains(p, "%") {
			p = "%" + p + "%"
		}
		like = p
	}
	if !f.Since.IsZero() {
		since = f.Since
	}
	items, notes := f.ItemIDs, f.NotificationIDs
	if items == nil {
		items = []int64{}
	}
	if notes == nil {
		notes = []string{}
	}
	return []any{len(items)+len(notes) > 0, items, notes, like, since}
}

// retryWhere selects the failed items a RetryFilter names.
const retryWhere = `status = 'failed'
	AND (NOT $1::boolean OR id = ANY($2::bigint[]) OR notification_id = ANY($3::uuid[]))
	AND ($4::text IS NULL OR COALESCE(last_error, '') ILIKE $4::text)
	AND ($5::timestamptz IS NULL OR updated_at >= $5::timestamptz)`

// CountRetryable counts the failed items f selects, for a dry run.
func (q *Queue) CountRetryable(ctx context.Context, f RetryFilter) (int64, error) {
	if f.empty() && !f.All {
		return 0, ErrNoSelector
	}
	var n int64
	if err := q.pool.QueryRow(ctx, `SELECT count(*) FROM notify.queue_items WHERE `+retryWhere, f.args()...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count failed items: %w", interpretError(err))
	}
	return n, nil
}

// RetryFailed puts the failed items f selects back to pending with a fresh
// set of attempts, due now, and rings the workers' doorbell (NOTIFY
// notify_queue) in the same transaction so an idle worker takes them at once.
// last_error is kept until an attempt succeeds. It returns how many items
// were put back.
func (q *Queue) RetryFailed(ctx context.Context, f RetryFilter) (int64, error) {
	if f.empty() && !f.All {
		return 0, ErrNoSelector
	}
	var n int64
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE notify.queue_items
			SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
			WHERE `+retryWhere, f.args()...)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify('notify_queue', '')`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("retry failed items: %w", interpretError(err))
	}
	return n, nil
}
