package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgbouncertest"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// nowhere is a DATABASE_URL that answers nothing: a command that works with
// it beside a good DATABASE_DIRECT_URL did its work on the direct one.
const nowhere = "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"

// TestMigrateUsesDirectURL: goose's session lock cannot live on a
// transaction pooler, so migrations run on DATABASE_DIRECT_URL when it is set.
func TestMigrateUsesDirectURL(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	env := envOf(map[string]string{"DATABASE_URL": nowhere, "DATABASE_DIRECT_URL": db.URL})
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"migrate", "status"}, env, &out, &errOut); err != nil {
		t.Fatalf("migrate status with DATABASE_DIRECT_URL: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate status:\n%s", out.String())
	}
}

// TestWorkerUsesDirectURL: the standalone worker's work is all
// session-scoped (LISTEN, the busy mark's advisory lock), so with
// DATABASE_DIRECT_URL set it needs nothing else.
func TestWorkerUsesDirectURL(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	env := envOf(map[string]string{"DATABASE_URL": nowhere, "DATABASE_DIRECT_URL": c.db.URL, "NOTIFY_LOG_LEVEL": "warn"})
	w := startCommand(t, env, "worker", "--poll-interval", "1m")
	c.exec(`INSERT INTO notify.notifications (message) VALUES ('through the direct url')`)
	testkit.Eventually(t, 20*time.Second, "the worker to publish", func() bool {
		if w.finished() {
			t.Fatalf("worker ended: %v\n%s", w.wait(t, time.Second), w.errOut.String())
		}
		return c.count(`SELECT count(*) FROM notify.queue_items WHERE status = 'sent'`) == 1
	})
}

// TestTailDBListensOnDirectURL: `tail --db` with DATABASE_URL on a
// transaction pooler reads through it but LISTENs on DATABASE_DIRECT_URL: a
// LISTEN through the pooler hears nothing (its server connection goes back
// to the pool after each transaction). With a poll interval of an hour,
// only the NOTIFY can make the tail print in time.
func TestTailDBListensOnDirectURL(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	bouncer := pgbouncertest.Start(t)
	c.startWorker()
	env := envOf(map[string]string{"DATABASE_URL": bouncer.URL(c.db.Name), "DATABASE_DIRECT_URL": c.db.URL, "NOTIFY_LOG_LEVEL": "warn"})
	tail := startCommand(t, env, "tail", "--db", "--count", "1", "--poll-interval", "1h")
	testkit.Eventually(t, 20*time.Second, "the tail's listener on the direct connection", func() bool {
		if tail.finished() {
			t.Fatalf("tail ended early: %v\n%s", tail.wait(t, time.Second), tail.errOut.String())
		}
		return c.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'notifyd-tail-listener' AND query ILIKE 'listen%'`) > 0
	})
	c.exec(`INSERT INTO notify.notifications (message) VALUES ('rung through the direct connection')`)
	if err := tail.wait(t, 30*time.Second); err != nil {
		t.Fatalf("tail: %v\n%s\npgbouncer:\n%s", err, tail.errOut.String(), bouncer.Log())
	}
	if !strings.Contains(tail.out.String(), "rung through the direct connection") {
		t.Fatalf("tail printed:\n%s", tail.out.String())
	}
}
