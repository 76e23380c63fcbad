package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecentItem is a queue item as the monitoring page shows it: where it
// stands, how many tries it took, and why the last one failed.
type RecentItem struct {
	ID             int64     `json:"id"`
	NotificationID string    `json:"notificationId"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	MaxAttempts    int       `json:"maxAttempts"`
	LastError      string    `json:"lastError"`
	NextAttemptAt  time.Time `json:"nextAttemptAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
	Message        string    `json:"message"`
}

// maxRecent bounds Recent's limit: the answer feeds a page, not an export.
const maxRecent = 100

// Recent returns the limit (1 to 100) queue items changed last, newest
// first, with their notification's message (errors cut at 500 characters,
// messages at 200).
//
// There is no index on updated_at (it would cost every claim and publish a
// non-HOT update), so this reads the queue table; the status action that
// calls it counts the whole table anyway.
func (q *Queue) Recent(ctx context.Context, limit int) ([]RecentItem, error) {
	limit = min(max(limit, 1), maxRecent)
	rows, err := q.pool.Query(ctx, `SELECT q.id, q.notification_id::text, q.status, q.attempts, q.max_attempts,
			left(COALESCE(q.last_error, ''), 500), q.next_attempt_at, q.updated_at, left(n.message, 200)
		FROM (SELECT * FROM notify.queue_items ORDER BY updated_at DESC, id DESC LIMIT $1) q
		JOIN notify.notifications n ON n.id = q.notification_id
		ORDER BY q.updated_at DESC, q.id DESC`, limit)
	if err != nil {
		return nil, fmt.Errorf("recent queue items: %w", interpretError(err))
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RecentItem, error) {
		var it RecentItem
		err := row.Scan(&it.ID, &it.NotificationID, &it.Status, &it.Attempts, &it.MaxAttempts,
			&it.LastError, &it.NextAttemptAt, &it.UpdatedAt, &it.Message)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("recent queue items: %w", interpretError(err))
	}
	return items, nil
}
