package postgres_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestDatabaseRefusesUndeliverableRows: an INSERT that the system could not
// deliver consistently fails with a check violation that names the rule;
// the odd shapes that can be delivered consistently are accepted.
func TestDatabaseRefusesUndeliverableRows(t *testing.T) {
	t.Parallel()
	db := pgtest.NewQueued(t)
	ctx := t.Context()
	long := func(n int) string { return strings.Repeat("x", n) }

	refused := []struct {
		name, sql, constraint string
		args                  []any
	}{
		{"NULL role", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', ARRAY['FINANCE', NULL])`, "notifications_target_roles_check", nil},
		{"empty role list", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', '{}')`, "notifications_target_roles_check", nil},
		{"empty role", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', ARRAY[''])`, "notifications_target_roles_check", nil},
		{"blank role", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', ARRAY[' 	'])`, "notifications_target_roles_check", nil},
		{"nested roles", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', '{{FINANCE},{OPS}}')`, "notifications_target_roles_check", nil},
		{"roles not from 1", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', '[0:1]={FINANCE,OPS}')`, "notifications_target_roles_check", nil},
		{"65 roles", `INSERT INTO notify.notifications (message, target_roles) SELECT 'x', array_agg('r' || g) FROM generate_series(1, 65) g`, "notifications_target_roles_check", nil},
		{"long role", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', ARRAY[$1])`, "notifications_target_roles_check", []any{long(201)}},
		{"empty user", `INSERT INTO notify.notifications (message, target_user_id) VALUES ('x', '')`, "notifications_target_user_id_check", nil},
		{"blank user", `INSERT INTO notify.notifications (message, target_user_id) VALUES ('x', E' \t')`, "notifications_target_user_id_check", nil},
		{"long user", `INSERT INTO notify.notifications (message, target_user_id) VALUES ('x', $1)`, "notifications_target_user_id_check", []any{long(201)}},
		{"long message", `INSERT INTO notify.notifications (message) VALUES ($1)`, "notifications_message_size_check", []any{long(4097)}},
		{"empty message", `INSERT INTO notify.notifications (message) VALUES ('')`, "notifications_message_check", nil},
		{"long details", `INSERT INTO notify.notifications (message, details) VALUES ('x', $1)`, "notifications_details_size_check", []any{long(16385)}},
		{"empty module", `INSERT INTO notify.notifications (message, module) VALUES ('x', '')`, "notifications_module_check", nil},
		{"long action type", `INSERT INTO notify.notifications (message, action_type) VALUES ('x', $1)`, "notifications_action_type_check", []any{long(201)}},
		{"empty idempotency key", `INSERT INTO notify.notifications (message, idempotency_key) VALUES ('x', '')`, "notifications_idempotency_key_check", nil},
		{"big data", `INSERT INTO notify.notifications (message, data) VALUES ('x', jsonb_build_object('k', $1::text))`, "notifications_data_size_check", []any{long(32768)}},
		{"data not an object", `INSERT INTO notify.notifications (message, data) VALUES ('x', '[]')`, "notifications_data_check", nil},
		{"bad severity", `INSERT INTO notify.notifications (message, severity) VALUES ('x', 'urgent')`, "notifications_severity_check", nil},
		{"preset seq", `INSERT INTO notify.notifications (message, seq, published_at) VALUES ('x', 1000, now())`, "notifications_unpublished_on_insert", nil},
		{"preset published_at", `INSERT INTO notify.notifications (message, published_at) VALUES ('x', now())`, "notifications_published_check", nil},
		{"one bad row of many", `INSERT INTO notify.notifications (message, target_roles) VALUES ('a', '{OPS}'), ('b', ARRAY[NULL]::text[])`, "notifications_target_roles_check", nil},
	}
	for _, c := range refused {
		t.Run("refuses "+c.name, func(t *testing.T) {
			_, err := db.Pool.Exec(ctx, c.sql, c.args...)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != c.constraint {
				t.Fatalf("got %v, want a check violation of %s", err, c.constraint)
			}
		})
	}
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.notifications`); n != 0 {
		t.Fatalf("%d rows were written by refused inserts", n)
	}
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.queue_items`); n != 0 {
		t.Fatalf("%d queue items were written by refused inserts", n)
	}

	accepted := []struct {
		name, sql string
		args      []any
	}{
		{"duplicate roles", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', '{OPS,OPS,ops}')`, nil},
		{"roles with spaces and accents", `INSERT INTO notify.notifications (message, target_roles) VALUES ('x', ARRAY['a b', 'rôle'])`, nil},
		{"64 roles of 200 bytes", `INSERT INTO notify.notifications (message, target_roles) SELECT 'x', array_agg(lpad(g::text, 200, 'r')) FROM generate_series(1, 64) g`, nil},
		{"user and roles", `INSERT INTO notify.notifications (message, target_user_id, target_roles) VALUES ('x', ' alice ', '{FINANCE}')`, nil},
		{"limits exactly", `INSERT INTO notify.notifications (message, details, module) VALUES ($1, $2, $3)`, []any{long(4096), long(16384), long(200)}},
	}
	for _, c := range accepted {
		t.Run("accepts "+c.name, func(t *testing.T) {
			if _, err := db.Pool.Exec(ctx, c.sql, c.args...); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.queue_items`); n != int64(len(accepted)) {
		t.Fatalf("%d queue items for %d accepted inserts", n, len(accepted))
	}
}

// TestPublishedTargetsStayFixed: once a notification is published its
// targets are what it was delivered by, so changing them is refused (and
// changes nothing); un-numbering it in the same UPDATE is the way to send it
// again, and publishing itself (which sets seq) is never caught by the guard.
func TestPublishedTargetsStayFixed(t *testing.T) {
	t.Parallel()
	db, queue := pgtest.NewQueue(t)
	ctx := t.Context()
	id := pgtest.Scalar[string](t, ctx, db.Pool,
		`INSERT INTO notify.notifications (message, target_user_id) VALUES ('x', 'alice') RETURNING id::text`)
	if b, err := queue.ClaimAndPublish(ctx, 10, time.Minute); err != nil || b.Items != 1 {
		t.Fatalf("publish: %+v, %v", b, err)
	}

	for _, set := range []string{`target_user_id = 'mallory'`, `target_roles = '{ADMIN}'`, `target_user_id = NULL`} {
		_, err := db.Pool.Exec(ctx, `UPDATE notify.notifications SET `+set+` WHERE id = $1`, id)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != "notifications_published_targets_fixed" {
			t.Fatalf("SET %s: got %v, want a check violation of notifications_published_targets_fixed", set, err)
		}
	}
	if got := pgtest.Scalar[string](t, ctx, db.Pool,
		`SELECT coalesce(target_user_id, '-') || ' ' || coalesce(target_roles::text, '-') FROM notify.notifications WHERE id = $1`, id); got != "alice -" {
		t.Fatalf("targets after refused updates: %q, want %q", got, "alice -")
	}
	// Other columns may change; un-numbering with new targets is accepted.
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.notifications SET details = 'fixed typo' WHERE id = $1`, id)
	pgtest.Exec(t, ctx, db.Pool,
		`UPDATE notify.notifications SET seq = NULL, published_at = NULL, target_user_id = 'bob' WHERE id = $1`, id)
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'pending' WHERE notification_id = $1`, id)
	if b, err := queue.ClaimAndPublish(ctx, 10, time.Minute); err != nil || b.Items != 1 {
		t.Fatalf("publish again: %+v, %v", b, err)
	}
	if got := pgtest.Scalar[string](t, ctx, db.Pool,
		`SELECT target_user_id FROM notify.notifications WHERE id = $1 AND seq IS NOT NULL`, id); got != "bob" {
		t.Fatalf("republished to %q, want bob", got)
	}
}
