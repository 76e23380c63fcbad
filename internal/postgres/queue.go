package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Queue runs the worker's statements on notify.queue_items.
type Queue struct {
	pool *pgxpool.Pool
}

// NewQueue returns the queue store over pool.
func NewQueue(pool *pgxpool.Pool) *Queue { return &Queue{pool: pool} }

// Claim is a queue item a worker holds. Attempts (after the claim) together
// with the worker id is the lease token: a completion that does not match it
// changes nothing.
type Claim struct {
	ItemID         int64
	NotificationID string
	Attempts       int
	MaxAttempts    int
}

// Claim takes up to limit due pending items for workerID in one statement.
func (q *Queue) Claim(ctx context.Context, workerID string, limit int) ([]Claim, error) {
	rows, err := q.pool.Query(ctx, `WITH due AS (
			SELECT id FROM notify.queue_items
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE notify.queue_items q
		SET status = 'processing', locked_by = $1, locked_at = now(), attempts = q.attempts + 1, updated_at = now()
		FROM due WHERE q.id = due.id
		RETURNING q.id, q.notification_id, q.attempts, q.max_attempts`, workerID, limit)
	if err != nil {
		return nil, fmt.Errorf("claim batch: %w", interpretError(err))
	}
	defer rows.Close()
	var claims []Claim
	for rows.Next() {
		var c Claim
		if err := rows.Scan(&c.ItemID, &c.NotificationID, &c.Attempts, &c.MaxAttempts); err != nil {
			return nil, fmt.Errorf("claim batch: scan: %w", err)
		}
		claims = append(claims, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim batch: %w", interpretError(err))
	}
	return claims, nil
}

// stampAndRing takes the rows of a CTE named "mine" (queue items now sent:
// id, notification_id), takes the next seqs from the stream head (whose row
// lock, held to commit, serializes all publishers so seqs become visible in
// commit order), stamps the notifications, and rings every node's listener
// with the last seq. It answers (items in mine, last seq, -).
const stampAndRing = `, todo AS (
		SELECT n.id, row_number() OVER (ORDER BY m.id) AS ord
		FROM mine m JOIN notify.notifications n ON n.id = m.notification_id
		WHERE n.seq IS NULL
	), head AS (
		UPDATE notify.stream_head
		SET last_seq = last_seq + (SELECT count(*) FROM todo), published_at = now()
		WHERE EXISTS (SELECT 1 FROM todo)
		RETURNING last_seq - (SELECT count(*) FROM todo) AS base
	), stamped AS (
		UPDATE notify.notifications n
		SET seq = head.base + todo.ord, published_at = now()
		FROM todo, head WHERE n.id = todo.id
		RETURNING n.seq
	)
	SELECT (SELECT count(*) FROM mine), s.last,
		CASE WHEN s.last IS NOT NULL THEN pg_notify('notify_published', s.last::text) END
	FROM (SELECT max(seq) AS last FROM stamped) s`

// publishStatement publishes the claims (ids, attempts) that workerID
// still holds: the lease token must match, so a stalled worker cannot
// complete an item someone else took up.
const publishStatement = `WITH mine AS (
		UPDATE notify.queue_items q
		SET status = 'sent', sent_at = now(), updated_at = now(), locked_by = NULL, locked_at = NULL, last_error = NULL
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts)
		WHERE q.id = c.id AND q.attempts = c.attempts AND q.status = 'processing' AND q.locked_by = $3
		RETURNING q.id, q.notification_id
	)` + stampAndRing

// claimAndPublishStatement is the fast path: it claims due items with FOR
// UPDATE SKIP LOCKED and publishes them in the same statement, so each
// queue item is written once and each batch commits once. Nothing is ever
// left in processing: if the statement fails, nothing happened.
const claimAndPublishStatement = `WITH due AS (
		SELECT id FROM notify.queue_items
		WHERE status = 'pending' AND next_attempt_at <= now()
		ORDER BY next_attempt_at, id
		LIMIT $1
		FOR UPDATE SKIP LOCKED
	), mine AS (
		UPDATE notify.queue_items q
		SET status = 'sent', attempts = q.attempts + 1, sent_at = now(), updated_at = now(), last_error = NULL
		FROM due WHERE q.id = due.id
		RETURNING q.id, q.notification_id
	)` + stampAndRing

// ClaimAndPublish claims up to limit due items and publishes them in one
// statement. It returns how many it published and the last seq.
func (q *Queue) ClaimAndPublish(ctx context.Context, limit int) (n int, lastSeq int64, err error) {
	var last *int64
	if err := q.pool.QueryRow(ctx, claimAndPublishStatement, limit).Scan(&n, &last, new(*string)); err != nil {
		return 0, 0, fmt.Errorf("claim and publish batch: %w", interpretError(err))
	}
	if last != nil {
		lastSeq = *last
	}
	return n, lastSeq, nil
}

// Publish publishes the claims workerID still holds and returns how many
// were still held and the last seq assigned (0 when none).
func (q *Queue) Publish(ctx context.Context, workerID string, claims []Claim) (held int, lastSeq int64, err error) {
	ids := make([]int64, len(claims))
	attempts := make([]int32, len(claims))
	for i, c := range claims {
		ids[i], attempts[i] = c.ItemID, int32(c.Attempts)
	}
	var last *int64
	var notified *string
	err = q.pool.QueryRow(ctx, publishStatement, ids, attempts, workerID).Scan(&held, &last, &notified)
	if err != nil {
		return 0, 0, fmt.Errorf("publish batch: %w", interpretError(err))
	}
	if last != nil {
		lastSeq = *last
	}
	return held, lastSeq, nil
}

// Fail records a failed attempt of a claim workerID still holds: back to
// pending until nextAttempt, or failed once attempts reached max_attempts.
// It returns the new status, or "" when the claim was no longer held.
func (q *Queue) Fail(ctx context.Context, workerID string, c Claim, reason string, nextAttempt time.Time) (string, error) {
	rows, err := q.pool.Query(ctx, `UPDATE notify.queue_items
		SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
		    last_error = $4, next_attempt_at = $5, locked_by = NULL, locked_at = NULL, updated_at = now()
		WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND status = 'processing'
		RETURNING status`, c.ItemID, c.Attempts, workerID, reason, nextAttempt)
	if err != nil {
		return "", fmt.Errorf("record failed attempt: %w", interpretError(err))
	}
	defer rows.Close()
	status := ""
	for rows.Next() {
		if err := rows.Scan(&status); err != nil {
			return "", fmt.Errorf("record failed attempt: %w", err)
		}
	}
	return status, rows.Err()
}

// Release hands back claims workerID still holds without counting the
// attempt, for a worker that is shutting down.
func (q *Queue) Release(ctx context.Context, workerID string, claims []Claim) (int64, error) {
	ids := make([]int64, len(claims))
	attempts := make([]int32, len(claims))
	for i, c := range claims {
		ids[i], attempts[i] = c.ItemID, int32(c.Attempts)
	}
	tag, err := q.pool.Exec(ctx, `UPDATE notify.queue_items q
		SET status = 'pending', attempts = q.attempts - 1, locked_by = NULL, locked_at = NULL, updated_at = now()
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts)
		WHERE q.id = c.id AND q.attempts = c.attempts AND q.status = 'processing' AND q.locked_by = $3`,
		ids, attempts, workerID)
	if err != nil {
		return 0, fmt.Errorf("release claims: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}

// RescueExpired takes back items held in processing for longer than lease
// (their worker crashed or stalled): pending again, or failed when they have
// used their attempts.
func (q *Queue) RescueExpired(ctx context.Context, lease time.Duration) (int64, error) {
	tag, err := q.pool.Exec(ctx, `UPDATE notify.queue_items
		SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
		    last_error = 'lease expired: ' || locked_by || ' did not finish within ' || $2,
		    locked_by = NULL, locked_at = NULL, next_attempt_at = now(), updated_at = now()
		WHERE status = 'processing' AND locked_at < now() - $1::interval`, lease, lease.String())
	if err != nil {
		return 0, fmt.Errorf("rescue expired leases: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}

// NextDue returns when the earliest pending item becomes due (ok=false when
// none is pending).
func (q *Queue) NextDue(ctx context.Context) (due time.Time, ok bool, err error) {
	var t *time.Time
	if err := q.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM notify.queue_items WHERE status = 'pending'`).Scan(&t); err != nil {
		return time.Time{}, false, fmt.Errorf("next due item: %w", interpretError(err))
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}
