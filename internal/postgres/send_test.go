package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestSendIsBornPublished: notify.send (Notifications.Send) stores the
// notification already published, as a worker's publish leaves it: a seq,
// published_at, its queue item sent after one attempt, its roles indexed,
// notify_published rung with the seq, and no doorbell for the workers.
func TestSendIsBornPublished(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.NewQueued(t)
	notes := postgres.NewNotifications(db.Pool)
	lis := listen(t, ctx, db.URL, "notify_published", "notify_queue")

	before := time.Now().Add(-time.Second)
	n, created, err := notes.Send(ctx, notify.Notification{
		Target: notify.Target{UserID: "alice", Roles: []string{"OPS", "FINANCE", "OPS"}},
		Module: "orders", ActionType: "shipped", Details: "3 parcels", Message: "Order shipped",
		Severity: notify.SeverityHigh, Data: json.RawMessage(`{"order": 7}`), IdempotencyKey: "order-7",
	})
	if err != nil || !created {
		t.Fatalf("Send = %v, created %v; want created", err, created)
	}
	if n.Seq != 1 || n.PublishedAt.Before(before) || n.ID == "" || n.Target.UserID != "alice" || n.Module != "orders" ||
		n.ActionType != "shipped" || n.Details != "3 parcels" || n.Severity != notify.SeverityHigh || string(n.Data) != `{"order": 7}` {
		t.Fatalf("sent %+v, want seq 1, published now, the fields as given", n)
	}
	if got := nextNotification(t, lis, 5*time.Second); got.Channel != "notify_published" || got.Payload != "1" {
		t.Fatalf("notification %s %q, want notify_published \"1\"", got.Channel, got.Payload)
	}
	itemID := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT id FROM notify.queue_items WHERE notification_id = $1`, n.ID)
	r := readItem(t, ctx, db.Pool, itemID)
	if r.Status != "sent" || r.Attempts != 1 || r.SentAt == nil || r.SentAt.Before(before) || r.LockedBy != nil || r.LastError != nil ||
		r.Seq == nil || *r.Seq != 1 {
		t.Fatalf("queue item %+v, want sent after one attempt, seq 1", r)
	}
	if roles := pgtest.Scalar[[]string](t, ctx, db.Pool, `SELECT array_agg(role ORDER BY role) FROM notify.notification_roles WHERE seq = 1`); len(roles) != 2 || roles[0] != "FINANCE" || roles[1] != "OPS" {
		t.Fatalf("notification_roles for seq 1: %v, want FINANCE and OPS once each", roles)
	}
	if got := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT last_seq FROM notify.stream_head`); got != 1 {
		t.Fatalf("stream head %d, want 1", got)
	}
	if got := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.histories`); got != 1 {
		t.Fatalf("%d histories, want the first one entered before the first seq", got)
	}

	t.Run("a repeated key publishes nothing", func(t *testing.T) {
		again, created, err := notes.Send(ctx, notify.Notification{Target: notify.Target{UserID: "alice", Roles: []string{"OPS", "FINANCE", "OPS"}},
			Module: "orders", ActionType: "shipped", Message: "Order shipped", Severity: notify.SeverityHigh, IdempotencyKey: "order-7"})
		if err != nil || created || again.ID != n.ID || again.Seq != 1 {
			t.Fatalf("Send again = %+v, created %v, %v; want the first one, not created", again, created, err)
		}
		_, _, err = notes.Send(ctx, notify.Notification{Message: "Something else", IdempotencyKey: "order-7"})
		if !errors.Is(err, notify.ErrConflict) {
			t.Fatalf("Send with the key and another message: %v, want ErrConflict", err)
		}
		var id string
		var seq *int64
		var sqlCreated bool
		if err := db.Pool.QueryRow(ctx, `SELECT (notification).id, (notification).seq, created
			FROM notify.send('Order shipped', idempotency_key => 'order-7')`).Scan(&id, &seq, &sqlCreated); err != nil {
			t.Fatal(err)
		}
		if id != n.ID || seq == nil || *seq != 1 || sqlCreated {
			t.Fatalf("notify.send again = %s, %v, %v; want %s, 1, false", id, seq, sqlCreated, n.ID)
		}
		if got := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.notifications`); got != 1 {
			t.Fatalf("%d notifications, want 1", got)
		}
	})

	t.Run("a key an INSERT took answers with its row, unpublished", func(t *testing.T) {
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message, idempotency_key) VALUES ('queued', 'by-insert')`)
		got, created, err := notes.Send(ctx, notify.Notification{Message: "queued", IdempotencyKey: "by-insert"})
		if err != nil || created || got.Seq != 0 || got.Message != "queued" {
			t.Fatalf("Send = %+v, created %v, %v; want the inserted row, not created, no seq", got, created, err)
		}
	})

	// Nothing was rung after seq 1: the repeats, and the INSERT (a worker's
	// doorbell is for rows it must publish; no worker is busy here, so the
	// INSERT rings notify_queue once).
	sentinel(t, ctx, db.Pool)
	if got := nextNotification(t, lis, 5*time.Second); got.Channel != "notify_queue" || got.Payload != "" {
		t.Fatalf("got %s %q, want the INSERT's doorbell", got.Channel, got.Payload)
	}
	if got := nextNotification(t, lis, 5*time.Second); got.Payload != "sentinel" {
		t.Fatalf("got %s %q before the sentinel: a send rang something", got.Channel, got.Payload)
	}

	t.Run("an INSERT still may not number a row", func(t *testing.T) {
		// Each forgery sets what notify.send sets and leaves out one of the
		// turn or the seq it took; the last sets it all to a seq ahead of the
		// sequence, which would hide every seq in between from the feeds.
		for name, stmts := range map[string][]string{
			"another seq than its setting": {`SELECT set_config('notify.born_published', '1000', true)`},
			"the setting, no turn":         {`SELECT set_config('notify.born_published', '1001', true)`},
			"the turn, a seq it did not take": {`SELECT pg_advisory_xact_lock(1852797545, 3)`,
				`SELECT set_config('notify.born_published', '1001', true)`},
			"the turn and a seq, another value": {`SELECT pg_advisory_xact_lock(1852797545, 3)`,
				`SELECT nextval('notify.notification_seq')`, `SELECT set_config('notify.born_published', '1001', true)`},
		} {
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				for _, q := range stmts {
					if _, err := tx.Exec(ctx, q); err != nil {
						return err
					}
				}
				_, err := tx.Exec(ctx, `INSERT INTO notify.notifications (message, seq, published_at) VALUES ('x', 1001, now())`)
				return err
			})
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.ConstraintName != "notifications_unpublished_on_insert" {
				t.Errorf("%s: INSERT with a seq: %v, want notifications_unpublished_on_insert", name, err)
			}
		}
	})

	t.Run("while the turn is taken, Send queues for the workers", func(t *testing.T) {
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(1852797545, 3)`); err != nil {
			t.Fatal(err)
		}
		queued, created, err := notes.Send(ctx, notify.Notification{Message: "while busy"})
		if err != nil || !created || queued.Seq != 0 {
			t.Fatalf("Send while the turn is held = %+v, created %v, %v; want created, queued without a seq", queued, created, err)
		}
		status := pgtest.Scalar[string](t, ctx, db.Pool, `SELECT status FROM notify.queue_items WHERE notification_id = $1`, queued.ID)
		if status != "pending" {
			t.Fatalf("queued item is %s, want pending", status)
		}
	})

	t.Run("a row that cannot be delivered gets no seq", func(t *testing.T) {
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `ALTER TABLE notify.notifications DROP CONSTRAINT notifications_target_user_id_check`); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, `SELECT notify.send('x', target_user_id => '')`)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Fatalf("send to user '': %v, want a check violation naming the reason", err)
		}
	})
}

// TestSendEntersANewHistory: a connection that sends on a restored copy (its
// recorded history names another cluster) moves the seqs past anything a
// client may have seen first, as a worker's connection does.
func TestSendEntersANewHistory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.NewQueued(t)
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	send := func(message string) int64 {
		t.Helper()
		var seq int64
		if err := conn.QueryRow(ctx, `SELECT (notification).seq FROM notify.send($1)`, message).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	if seq := send("first"); seq != 1 {
		t.Fatalf("first seq %d, want 1", seq)
	}
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.histories SET system_identifier = system_identifier + 1`)
	// This session entered its history already, as a worker's connection
	// does once; a new session checks again.
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if conn, err = pgx.Connect(ctx, db.URL); err != nil {
		t.Fatal(err)
	}
	if seq := send("after the restore"); seq != 2_000_000_000 {
		t.Fatalf("seq after a new history %d, want 2000000000", seq)
	}
	if reason := pgtest.Scalar[string](t, ctx, db.Pool, `SELECT reason FROM notify.histories ORDER BY id DESC LIMIT 1`); reason != "cluster" {
		t.Fatalf("newest history's reason %q, want cluster", reason)
	}
}

// TestSendQueuesBehindQueued: one producer's calls keep their order. A
// Send that queued (the publish turn was taken) is followed by the next
// Send into the queue rather than overtaken by it, so the workers number
// them in the order they were sent; once the queue is empty, Send is born
// published again.
func TestSendQueuesBehindQueued(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.NewQueued(t)
	notes := postgres.NewNotifications(db.Pool)
	// The database's first seq enters its first history, under the turn.
	if n, _, err := notes.Send(ctx, notify.Notification{Message: "2 new orders", CollapseKey: "orders"}); err != nil || n.Seq != 1 {
		t.Fatalf("first Send = seq %d, %v; want born published as 1", n.Seq, err)
	}
	turn, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := turn.Exec(ctx, `SELECT pg_advisory_xact_lock(1852797545, 3)`); err != nil {
		t.Fatal(err)
	}
	first, _, err := notes.Send(ctx, notify.Notification{Message: "3 new orders", CollapseKey: "orders"})
	if err != nil || first.Seq != 0 {
		t.Fatalf("Send while the turn is taken = seq %d, %v; want queued", first.Seq, err)
	}
	turn.Rollback(ctx)
	second, _, err := notes.Send(ctx, notify.Notification{Message: "4 new orders", CollapseKey: "orders"})
	if err != nil || second.Seq != 0 {
		t.Fatalf("Send behind a queued one = seq %d, %v; want queued behind it", second.Seq, err)
	}
	if b, err := postgres.NewQueue(db.Pool).ClaimAndPublish(ctx, 10, time.Minute); err != nil || b.Items != 2 {
		t.Fatalf("worker batch: %+v, %v", b, err)
	}
	var order []string
	if err := db.Pool.QueryRow(ctx, `SELECT array_agg(message ORDER BY seq) FROM notify.notifications`).Scan(&order); err != nil {
		t.Fatal(err)
	}
	if len(order) != 3 || order[1] != "3 new orders" || order[2] != "4 new orders" {
		t.Errorf("published in the order %v, want the order they were sent in", order)
	}
	third, _, err := notes.Send(ctx, notify.Notification{Message: "5 new orders", CollapseKey: "orders"})
	if err != nil || third.Seq != 4 {
		t.Errorf("Send with nothing queued = seq %d, %v; want born published as 4", third.Seq, err)
	}
}
