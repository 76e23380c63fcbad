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

// stampAndRing takes the rows of a CTE named "mine" (queue items just
// completed: id, notification_id, status), takes the next seqs from the
// stream head (whose row lock, held to commit, serializes all publishers so
// seqs become visible in commit order) for those now sent, stamps those
// notifications, and rings every node's listener with the last seq. Items
// that mine set aside (failed: the row slipped past the constraints and
// cannot be delivered consistently) get no seq. It answers (items in mine,
// last seq, -, "notification id: reason" of each item set aside). Each
// published notification's roles go into notify.notification_roles, the
// index by which a user's role notifications are read (audience.go).
const stampAndRing = `, todo AS (
		SELECT n.id, row_number() OVER (ORDER BY m.id) AS ord
		FROM mine m JOIN notify.notifications n ON n.id = m.notification_id
		WHERE n.seq IS NULL AND m.status = 'sent'
	), head AS (
		UPDATE notify.stream_head
		SET last_seq = last_seq + (SELECT count(*) FROM todo), published_at = now()
		WHERE EXISTS (SELECT 1 FROM todo)
		RETURNING last_seq - (SELECT count(*) FROM todo) AS base
	), stamped AS (
		UPDATE notify.notifications n
		SET seq = head.base + todo.ord, published_at = now()
		FROM todo, head WHERE n.id = todo.id
		RETURNING n.seq, n.target_roles
	), role_index AS (
		INSERT INTO notify.notification_roles (role, seq)
		SELECT DISTINCT r.role, s.seq FROM stamped s CROSS JOIN LATERAL unnest(s.target_roles) AS r(role)
		WHERE s.target_roles IS NOT NULL
	)
	SELECT (SELECT count(*) FROM mine), s.last,
		CASE WHEN s.last IS NOT NULL THEN pg_notify('notify_published', s.last::text) END,
		(SELECT array_agg(m.notification_id || ': ' || m.last_error ORDER BY m.id) FROM mine m WHERE m.status = 'failed')
	FROM (SELECT max(seq) AS last FROM stamped) s`

// setAside is the queue item's new state given r, the notification's
// notify.undeliverable_reason: sent when it can be delivered, failed (for
// good: another attempt would read the same row) with the reason otherwise.
const (
	setAsideStatus = `CASE WHEN r.reason IS NULL THEN 'sent' ELSE 'failed' END`
	setAsideError  = `CASE WHEN r.reason IS NOT NULL THEN 'not delivered: ' || r.reason || ' (fix the row, then retry the item)' END`
)

// publishStatement publishes the claims (ids, attempts) that workerID
// still holds: the lease token must match, so a stalled worker cannot
// complete an item someone else took up.
const publishStatement = `WITH mine AS (
		UPDATE notify.queue_items q
		SET status = ` + setAsideStatus + `, sent_at = CASE WHEN r.reason IS NULL THEN now() END, updated_at = now(),
			locked_by = NULL, locked_at = NULL, last_error = ` + setAsideError + `
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts),
			LATERAL (SELECT notify.undeliverable_reason(n) AS reason FROM notify.notifications n
			         WHERE n.id = (SELECT notification_id FROM notify.queue_items WHERE id = c.id)) r
		WHERE q.id = c.id AND q.attempts = c.attempts AND q.status = 'processing' AND q.locked_by = $3
		RETURNING q.id, q.notification_id, q.status, q.last_error
	)` + stampAndRing

// claimAndPublishStatement is the fast path: it claims due items with FOR
// UPDATE SKIP LOCKED and publishes them in the same statement, so each
// queue item is written once and each batch commits once. Nothing is ever
// left in processing: if the statement fails, nothing happened.
const claimAndPublishStatement = `WITH due AS (
		SELECT id, notification_id FROM notify.queue_items
		WHERE status = 'pending' AND next_attempt_at <= now()
		ORDER BY next_attempt_at, id
		LIMIT $1
		FOR UPDATE SKIP LOCKED
	), mine AS (
		UPDATE notify.queue_items q
		SET status = ` + setAsideStatus + `, attempts = q.attempts + 1, sent_at = CASE WHEN r.reason IS NULL THEN now() END,
			updated_at = now(), last_error = ` + setAsideError + `
		FROM due, LATERAL (SELECT notify.undeliverable_reason(n) AS reason FROM notify.notifications n
		                   WHERE n.id = due.notification_id) r
		WHERE q.id = due.id
		RETURNING q.id, q.notification_id, q.status, q.last_error
	)` + stampAndRing

// ClaimAndPublish claims up to limit due items and publishes them in one
// statement. It returns how many items it completed, the last seq, and
// "notification id: reason" for each item it set aside (failed at once: the
// row cannot be delivered consistently, see notify.undeliverable_reason).
func (q *Queue) ClaimAndPublish(ctx context.Context, limit int) (n int, lastSeq int64, setAside []string, err error) {
	var last *int64
	if err := q.pool.QueryRow(ctx, claimAndPublishStatement, limit).Scan(&n, &last, new(*string), &setAside); err != nil {
		return 0, 0, nil, fmt.Errorf("claim and publish batch: %w", interpretError(err))
	}
	if last != nil {
		lastSeq = *last
	}
	return n, lastSeq, setAside, nil
}

// Publish publishes the claims workerID still holds and returns how many
// were still held, the last seq assigned (0 when none) and the items it set
// aside, as ClaimAndPublish does.
func (q *Queue) Publish(ctx context.Context, workerID string, claims []Claim) (held int, lastSeq int64, setAside []string, err error) {
	ids := make([]int64, len(claims))
	attempts := make([]int32, len(claims))
	for i, c := range claims {
		ids[i], attempts[i] = c.ItemID, int32(c.Attempts)
	}
	var last *int64
	var notified *string
	err = q.pool.QueryRow(ctx, publishStatement, ids, attempts, workerID).Scan(&held, &last, &notified, &setAside)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("publish batch: %w", interpretError(err))
	}
	if last != nil {
		lastSeq = *last
	}
	return held, lastSeq, setAside, nil
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
