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

// recentStatement picks the items changed last without reading the queue
// table, which keeps the sent history: updated_at has no index (one would
// cost every claim and publish an index write and its HOT update), so the
// candidates come from indexes that exist, limit rows each, and only they
// are sorted by updated_at:
//
//   - the newest items (primary key): fresh inserts and, in normal
//     operation, what was just published;
//   - during a backlog, the items just before the oldest due pending one
//     (claim index, then primary key): what the worker just went through;
//   - failed items by updated_at, items in processing by locked_at, and
//     pending items by next_attempt_at (those waiting for a retry come
//     last), each through its partial index.
//
// An old item published on a retry drops out once it is sent; every other
// change is among the candidates.
const recentStatement = `WITH head AS (
		SELECT id FROM notify.queue_items WHERE status = 'pending' ORDER BY next_attempt_at, id LIMIT 1
	), candidates AS (
		(SELECT id FROM notify.queue_items ORDER BY id DESC LIMIT $1)
		UNION
		(SELECT id FROM notify.queue_items WHERE id < (SELECT id FROM head) ORDER BY id DESC LIMIT $1)
		UNION
		(SELECT id FROM notify.queue_items WHERE status = 'failed' ORDER BY updated_at DESC LIMIT $1)
		UNION
		(SELECT id FROM notify.queue_items WHERE status = 'processing' ORDER BY locked_at DESC LIMIT $1)
		UNION
		(SELECT id FROM notify.queue_items WHERE status = 'pending' ORDER BY next_attempt_at DESC, id DESC LIMIT $1)
	)
	SELECT q.id, q.notification_id::text, q.status, q.attempts, q.max_attempts,
		left(COALESCE(q.last_error, ''), 500), q.next_attempt_at, q.updated_at, left(n.message, 200)
	FROM candidates c
	JOIN notify.queue_items q ON q.id = c.id
	JOIN notify.notifications n ON n.id = q.notification_id
	ORDER BY q.updated_at DESC, q.id DESC
	LIMIT $1`

// Recent returns the limit (1 to 100) queue items changed last, newest
// first, with their notification's message (errors cut at 500 characters,
// messages at 200). It reads a few index ranges, whatever the size of the
// queue's history; recentStatement says which items it can miss.
func (q *Queue) Recent(ctx context.Context, limit int) ([]RecentItem, error) {
	limit = min(max(limit, 1), maxRecent)
	rows, err := q.pool.Query(ctx, recentStatement, limit)
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
