package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// insertedState is what became of the notification an INSERT made: its seq
// (nil: not published) and its queue item's status and attempts.
type insertedState struct {
	Seq      *int64
	Status   string
	Attempts int
}

func stateOfMessage(t *testing.T, ctx context.Context, pool *pgxpool.Pool, message string) insertedState {
	t.Helper()
	var s insertedState
	if err := pool.QueryRow(ctx, `SELECT n.seq, q.status, q.attempts FROM notify.notifications n
		JOIN notify.queue_items q ON q.notification_id = n.id WHERE n.message = $1`, message).Scan(&s.Seq, &s.Status, &s.Attempts); err != nil {
		t.Fatalf("read %q: %v", message, err)
	}
	return s
}

func (s insertedState) published() bool {
	return s.Seq != nil && s.Status == "sent" && s.Attempts == 1
}

func (s insertedState) queued() bool { return s.Seq == nil && s.Status == "pending" && s.Attempts == 0 }

func (s insertedState) String() string {
	seq := "NULL"
	if s.Seq != nil {
		seq = fmt.Sprint(*s.Seq)
	}
	return fmt.Sprintf("seq %s, item %s after %d attempts", seq, s.Status, s.Attempts)
}

// TestInsertPublishedByItsCommit: with no other publisher at work, an
// INSERT's own commit publishes the notification as a worker would (seq,
// published_at, its item sent after one attempt, its roles indexed,
// notify_published rung with the seq), with no ring for the workers, and
// after the history check a worker's connection makes.
func TestInsertPublishedByItsCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	lis := listen(t, ctx, db.URL, "notify_published", "notify_queue")

	pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message, target_user_id, target_roles)
		VALUES ('first', 'alice', '{OPS,FINANCE,OPS}')`)
	if s := stateOfMessage(t, ctx, db.Pool, "first"); !s.published() || *s.Seq != 1 {
		t.Fatalf("after the commit: %s; want seq 1, sent after one attempt", s)
	}
	if got := nextNotification(t, lis, 5*time.Second); got.Channel != "notify_published" || got.Payload != "1" {
		t.Fatalf("notification %s %q, want notify_published \"1\" (and no doorbell)", got.Channel, got.Payload)
	}
	if roles := pgtest.Scalar[[]string](t, ctx, db.Pool, `SELECT array_agg(role ORDER BY role) FROM notify.notification_roles WHERE seq = 1`); strings.Join(roles, ",") != "FINANCE,OPS" {
		t.Fatalf("notification_roles for seq 1: %v, want FINANCE and OPS once each", roles)
	}
	if late := pgtest.Scalar[bool](t, ctx, db.Pool, `SELECT published_at IS NULL OR published_at < created_at FROM notify.notifications WHERE seq = 1`); late {
		t.Fatal("published_at is not set at the commit")
	}
	if got := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.histories`); got != 1 {
		t.Fatalf("%d histories, want the first one entered before the first seq", got)
	}

	// A transaction's first four rows are published by its commit, in their
	// order; the rest go to the workers' batch, behind them.
	pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) SELECT 'batch ' || g FROM generate_series(1, 6) g`)
	for i := 1; i <= 6; i++ {
		s := stateOfMessage(t, ctx, db.Pool, fmt.Sprint("batch ", i))
		if i <= 4 && (!s.published() || *s.Seq != int64(1+i)) {
			t.Fatalf("batch %d: %s; want seq %d", i, s, 1+i)
		}
		if i > 4 && !s.queued() {
			t.Fatalf("batch %d: %s; want it queued for the workers", i, s)
		}
	}
	if got := nextNotification(t, lis, 5*time.Second); got.Channel != "notify_published" || got.Payload != "2" {
		t.Fatalf("notification %s %q, want notify_published \"2\"", got.Channel, got.Payload)
	}
	for range 3 {
		nextNotification(t, lis, 5*time.Second) // 3, 4, 5
	}
	if got := nextNotification(t, lis, 5*time.Second); got.Channel != "notify_queue" {
		t.Fatalf("notification %s %q, want the doorbell for the rows left queued", got.Channel, got.Payload)
	}
}

// TestInsertLeftQueued: the commit leaves its rows to the workers, and
// succeeds, whenever publishing them itself could number them out of
// commit order, make it wait, or is not allowed.
func TestInsertLeftQueued(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	cases := []struct {
		name string
		// before runs on its own connection before the insert and returns
		// what to undo after it.
		before func(t *testing.T, db *pgtest.DB) func()
		// tx runs in the inserting transaction, before the insert.
		tx string
	}{
		{name: "the setting is off", tx: `SET LOCAL notify.publish_at_commit = off`},
		{name: "repeatable read", tx: `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`},
		{name: "serializable", tx: `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`},
		{name: "inserted under a savepoint", tx: `SAVEPOINT s`},
		{name: "a worker is marked busy", before: func(t *testing.T, db *pgtest.DB) func() {
			return holdInTransaction(t, db, `SELECT pg_advisory_xact_lock_shared(1852797545, 2)`)
		}},
		{name: "another publisher holds the turn", before: func(t *testing.T, db *pgtest.DB) func() {
			return holdInTransaction(t, db, `SELECT pg_advisory_xact_lock(1852797545, 3)`)
		}},
		{name: "an earlier commit is queued", before: func(t *testing.T, db *pgtest.DB) func() {
			insertQueued(t, db, "earlier")
			return func() {}
		}},
		{name: "a worker holds a leased claim", before: func(t *testing.T, db *pgtest.DB) func() {
			insertQueued(t, db, "claimed")
			pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'processing', locked_by = 'w', locked_at = now()`)
			return func() {}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t)
			undo := func() {}
			if c.before != nil {
				undo = c.before(t, db)
			}
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				if c.tx != "" {
					if _, err := tx.Exec(ctx, c.tx); err != nil {
						return err
					}
				}
				_, err := tx.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ('mine')`)
				return err
			})
			undo()
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
			if s := stateOfMessage(t, ctx, db.Pool, "mine"); !s.queued() {
				t.Fatalf("after the commit: %s; want it queued for the workers", s)
			}
		})
	}

	t.Run("a role that may insert but not publish", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		role := "notifyd_test_producer_" + strings.ReplaceAll(db.Name[len(db.Name)-12:], "-", "")
		pgtest.Exec(t, ctx, db.Pool, `CREATE ROLE `+role)
		t.Cleanup(func() {
			_, _ = db.Pool.Exec(context.Background(), `DROP OWNED BY `+role)
			_, _ = db.Pool.Exec(context.Background(), `DROP ROLE `+role)
		})
		pgtest.Exec(t, ctx, db.Pool, `GRANT USAGE ON SCHEMA notify TO `+role+`;
			GRANT INSERT ON notify.notifications, notify.queue_items TO `+role+`;
			GRANT USAGE ON ALL SEQUENCES IN SCHEMA notify TO `+role)
		conn, err := db.Pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		defer func() { _, _ = conn.Exec(context.Background(), `RESET ROLE; RESET notify.publish_at_commit`) }()
		for _, m := range []string{"by the producer", "by the producer again"} {
			if _, err := conn.Exec(ctx, `SET ROLE `+role); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ($1)`, m); err != nil {
				t.Fatalf("insert as a producer that may not publish: %v; want the commit to succeed", err)
			}
			if _, err := conn.Exec(ctx, `RESET ROLE`); err != nil {
				t.Fatal(err)
			}
			if s := stateOfMessage(t, ctx, db.Pool, m); !s.queued() {
				t.Fatalf("%s: %s; want it queued for the workers", m, s)
			}
		}
		var got string
		if err := conn.QueryRow(ctx, `SELECT current_setting('notify.publish_at_commit')`).Scan(&got); err != nil || got != "off" {
			t.Fatalf("notify.publish_at_commit for the session afterwards: %q, want off (no second try); %v", got, err)
		}
	})
}

// TestInsertBehindAQueuedCommitKeepsCommitOrder: a notification committed
// while another publisher held the turn is queued; one committed after it,
// with the turn free again, is queued behind it too (not numbered ahead of
// it), and the workers publish the two in commit order.
func TestInsertBehindAQueuedCommitKeepsCommitOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	q := db.Pool
	release := holdInTransaction(t, db, `SELECT pg_advisory_xact_lock(1852797545, 3)`)
	pgtest.Exec(t, ctx, q, `INSERT INTO notify.notifications (message) VALUES ('A')`)
	release()
	pgtest.Exec(t, ctx, q, `INSERT INTO notify.notifications (message) VALUES ('B')`)
	for _, m := range []string{"A", "B"} {
		if s := stateOfMessage(t, ctx, q, m); !s.queued() {
			t.Fatalf("%s: %s; want it queued", m, s)
		}
	}
	publishQueued(t, ctx, q)
	a, b := stateOfMessage(t, ctx, q, "A"), stateOfMessage(t, ctx, q, "B")
	if !a.published() || !b.published() || *a.Seq >= *b.Seq {
		t.Fatalf("A: %s, B: %s; want both published, A first", a, b)
	}
	// The queue drained, the next commit publishes itself again.
	pgtest.Exec(t, ctx, q, `INSERT INTO notify.notifications (message) VALUES ('C')`)
	if c := stateOfMessage(t, ctx, q, "C"); !c.published() || *c.Seq != *b.Seq+1 {
		t.Fatalf("C: %s; want published by its commit, after B", c)
	}
}

// publishQueued publishes what is queued as a worker's claim does.
func publishQueued(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	b, err := postgres.NewQueue(pool).ClaimAndPublish(ctx, 100, time.Minute)
	if err != nil || b.Items == 0 {
		t.Fatalf("claim and publish: %+v, %v; want the queued items", b, err)
	}
}
