package sqlfiles_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// item is one seeded notification and its queue item.
type item struct {
	user      string   // target_user_id; "" for NULL
	roles     []string // target_roles; nil for NULL
	module    string
	severity  string
	created   time.Time
	status    string
	next      time.Time // next_attempt_at; created when zero
	attempts  int
	lastError string
	lockedBy  string
	lockedAt  time.Time
	updated   time.Time // updated_at; created when zero
	published time.Time // sent items: published_at and sent_at
	seq       int64

	// Set by seed.
	id      int64  // queue_items.id
	nid     string // notifications.id
	message string
}

// world is a database holding a queue item in every state and
// notifications for every kind of target, at known times.
type world struct {
	db    *pgtest.DB
	base  time.Time // a whole minute, at most a minute ago: history is laid out before it
	now   time.Time // when the seed ran: due times and leases count from it
	items map[string]*item
}

// scenario lays the world out around base and now:
//
//	key               status      target              created      module
//	failed-a1         failed      user carol          base-50m     orders   connection refused, at base-40m
//	failed-a2         failed      dave + ADMIN,USER   base-45m     billing  connection refused, at base-20m
//	sent-1            sent  seq 2 user alice          base-30m     orders   published 1s later
//	sent-2            sent  seq 3 everyone            base-30m+10s news     published 3s later
//	stuck             processing  role USER           base-20m     orders   held by w-stuck since base-10m
//	failed-b          failed      role NOBODY         base-16m     orders   payload too large, at base-15m
//	due-old           pending     user alice          base-10m     orders   due base-5m, 1 attempt (timeout)
//	sent-3            sent  seq 4 role OTHER          base-5m      news     published 500ms later
//	not-due           pending     everyone            base-3m      orders   due now+10m, 2 attempts (timeout)
//	due-new           pending     role ADMIN          base-2m      billing  due base-1m
//	fresh             processing  user bob            base-1m      billing  held by w-fresh since now-2s
//	old-alice         sent  seq 1 user alice          base-3d      news     published 1s later
func scenario(base, now time.Time) map[string]*item {
	m, s := time.Minute, time.Second
	return map[string]*item{
		"failed-a1": {user: "carol", module: "orders", created: base.Add(-50 * m), status: "failed", attempts: 3, lastError: "connection refused", updated: base.Add(-40 * m)},
		"failed-a2": {user: "dave", roles: []string{"ADMIN", "USER"}, module: "billing", created: base.Add(-45 * m), status: "failed", attempts: 3, lastError: "connection refused", updated: base.Add(-20 * m)},
		"sent-1":    {user: "alice", module: "orders", created: base.Add(-30 * m), status: "sent", attempts: 1, published: base.Add(-30*m + s), seq: 2},
		"sent-2":    {module: "news", created: base.Add(-30*m + 10*s), status: "sent", attempts: 1, published: base.Add(-30*m + 13*s), seq: 3},
		"stuck":     {roles: []string{"USER"}, module: "orders", created: base.Add(-20 * m), status: "processing", attempts: 2, lockedBy: "w-stuck", lockedAt: base.Add(-10 * m)},
		"failed-b":  {roles: []string{"NOBODY"}, module: "orders", created: base.Add(-16 * m), status: "failed", attempts: 3, lastError: "payload too large", updated: base.Add(-15 * m)},
		"due-old":   {user: "alice", module: "orders", created: base.Add(-10 * m), status: "pending", next: base.Add(-5 * m), attempts: 1, lastError: "timeout"},
		"sent-3":    {roles: []string{"OTHER"}, module: "news", created: base.Add(-5 * m), status: "sent", attempts: 1, published: base.Add(-5*m + 500*time.Millisecond), seq: 4},
		"not-due":   {module: "orders", created: base.Add(-3 * m), status: "pending", next: now.Add(10 * m), attempts: 2, lastError: "timeout"},
		"due-new":   {roles: []string{"ADMIN"}, module: "billing", severity: "high", created: base.Add(-2 * m), status: "pending", next: base.Add(-1 * m)},
		"fresh":     {user: "bob", module: "billing", created: base.Add(-1 * m), status: "processing", attempts: 1, lockedBy: "w-fresh", lockedAt: now.Add(-2 * s)},
		"old-alice": {user: "alice", module: "news", created: base.Add(-72 * time.Hour), status: "sent", attempts: 1, published: base.Add(-72*time.Hour + s), seq: 1},
	}
}

// seed creates a database holding the scenario.
func seed(t *testing.T) *world {
	t.Helper()
	db := pgtest.New(t)
	now := time.Now().Truncate(time.Microsecond)
	w := &world{db: db, base: now.Truncate(time.Minute), now: now}
	w.items = scenario(w.base, w.now)
	ctx := t.Context()
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		for key, it := range w.items {
			if err := insertItem(ctx, tx, key, it); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE notify.stream_head SET last_seq = 4, published_at = $1`, w.items["sent-3"].published)
		return err
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return w
}

func insertItem(ctx context.Context, tx pgx.Tx, key string, it *item) error {
	it.message = "message " + key
	if it.severity == "" {
		it.severity = "medium"
	}
	if it.next.IsZero() {
		it.next = it.created
	}
	if it.updated.IsZero() {
		it.updated = it.created
		if !it.lockedAt.IsZero() {
			it.updated = it.lockedAt
		}
		if !it.published.IsZero() {
			it.updated = it.published
		}
	}
	if err := tx.QueryRow(ctx, `INSERT INTO notify.notifications
			(target_user_id, target_roles, module, message, severity, created_at)
		VALUES (NULLIF($1, ''), $2, NULLIF($3, ''), $4, $5, $6) RETURNING id`,
		it.user, it.roles, it.module, it.message, it.severity, it.created,
	).Scan(&it.nid); err != nil {
		return err
	}
	if it.seq != 0 { // published as the worker does it: numbered, roles indexed
		if _, err := tx.Exec(ctx, `WITH n AS (
				UPDATE notify.notifications SET seq = $2, published_at = $3 WHERE id = $1 RETURNING seq, target_roles)
			INSERT INTO notify.notification_roles (role, seq) SELECT DISTINCT unnest(target_roles), seq FROM n`,
			it.nid, it.seq, it.published); err != nil {
			return err
		}
	}
	return tx.QueryRow(ctx, `UPDATE notify.queue_items
		SET status = $2, attempts = $3, next_attempt_at = $4, last_error = NULLIF($5, ''),
		    locked_by = NULLIF($6, ''), locked_at = $7, created_at = $8, updated_at = $9, sent_at = $10
		WHERE notification_id = $1 RETURNING id`,
		it.nid, it.status, it.attempts, it.next, it.lastError,
		it.lockedBy, nullTime(it.lockedAt), it.created, it.updated, nullTime(it.published),
	).Scan(&it.id)
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// queueRow is a queue item as the repair tests look at it afterwards.
type queueRow struct {
	status    string
	attempts  int
	next      time.Time
	updated   time.Time
	lastError *string
	lockedBy  *string
}

// row reads queue item key back.
func (w *world) row(t *testing.T, key string) queueRow {
	t.Helper()
	var r queueRow
	if err := w.db.Pool.QueryRow(t.Context(), `SELECT status, attempts, next_attempt_at, updated_at, last_error, locked_by
		FROM notify.queue_items WHERE id = $1`, w.items[key].id,
	).Scan(&r.status, &r.attempts, &r.next, &r.updated, &r.lastError, &r.lockedBy); err != nil {
		t.Fatalf("read queue item %s: %v", key, err)
	}
	return r
}
