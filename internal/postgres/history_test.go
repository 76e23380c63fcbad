package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// publishN inserts n notifications and publishes them, returning the last
// seq handed out.
func publishN(t *testing.T, ctx context.Context, pool *pgxpool.Pool, n int, message string) int64 {
	t.Helper()
	insertNotifications(t, ctx, pool, n, message)
	b, err := postgres.NewQueue(pool).ClaimAndPublish(ctx, n, time.Minute)
	if err != nil {
		t.Fatalf("publish %d: %v", n, err)
	}
	if b.Items != n {
		t.Fatalf("published %d items, want %d", b.Items, n)
	}
	return b.LastSeq
}

// resumeState asks notify.resume_point_state about each seq.
func resumeStates(t *testing.T, ctx context.Context, pool *pgxpool.Pool, want map[int64]postgres.ResumePoint) {
	t.Helper()
	notes := postgres.NewNotifications(pool)
	for seq, w := range want {
		got, err := notes.ResumePointState(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("resume point %d: %q, want %q", seq, got, w)
		}
	}
}

func TestEnterHistoryFirstThenSame(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	db, q := pgtest.NewQueue(t)
	if last := publishN(t, ctx, db.Pool, 3, "before"); last != 3 {
		t.Fatalf("last seq %d, want 3", last)
	}
	e, err := q.EnterHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.Entered != "first" || e.Reason != "first" || e.ResumedAfter != 3 || e.FirstSeq != 4 || e.IsNew() {
		t.Fatalf("first check: %+v, want first history resumed after 3 from 4", e)
	}
	for range 3 {
		if e, err = q.EnterHistory(ctx); err != nil || e.Entered != "same" || e.FirstSeq != 4 {
			t.Fatalf("check again: %+v, %v; want the same history", e, err)
		}
	}
	if last := publishN(t, ctx, db.Pool, 2, "after"); last != 5 {
		t.Fatalf("last seq %d on the same history, want 5 (no jump)", last)
	}
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.histories`); n != 1 {
		t.Fatalf("%d histories recorded, want 1", n)
	}
	h, err := postgres.NewNotifications(db.Pool).Head(ctx)
	if err != nil || len(h.Holes) != 0 {
		t.Fatalf("head %+v, %v: want no holes", h, err)
	}
	resumeStates(t, ctx, db.Pool, map[int64]postgres.ResumePoint{0: postgres.ResumeOK, 4: postgres.ResumeOK,
		5: postgres.ResumeOK, 6: postgres.ResumeAhead})
}

// A new history (here the operator's) moves the sequence past a billion
// and leaves a hole that every head read reports.
func TestNewHistoryJumpsAndReportsTheHole(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, q := pgtest.NewQueue(t)
	if _, err := q.EnterHistory(ctx); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, db.Pool, 39, "old")
	var e postgres.Entered
	if err := db.Pool.QueryRow(ctx, `SELECT entered, reason, resumed_after, first_seq FROM notify.enter_history('restored by hand')`).
		Scan(&e.Entered, &e.Reason, &e.ResumedAfter, &e.FirstSeq); err != nil {
		t.Fatal(err)
	}
	want := postgres.Entered{Entered: "new", Reason: "operator", ResumedAfter: 39, FirstSeq: 2_000_000_000}
	if e != want {
		t.Fatalf("operator's new history: %+v, want %+v", e, want)
	}
	hole := postgres.Hole{After: 39, First: 2_000_000_000}
	// Before anything is published on the new history, a resume point in
	// the hole is lost, not merely ahead.
	resumeStates(t, ctx, db.Pool, map[int64]postgres.ResumePoint{39: postgres.ResumeOK, 40: postgres.ResumeLost,
		46: postgres.ResumeLost, 1_999_999_999: postgres.ResumeLost, 2_000_000_000: postgres.ResumeAhead})
	if last := publishN(t, ctx, db.Pool, 3, "new"); last != 2_000_000_002 {
		t.Fatalf("last seq on the new history %d, want 2000000002", last)
	}
	resumeStates(t, ctx, db.Pool, map[int64]postgres.ResumePoint{46: postgres.ResumeLost, 2_000_000_000: postgres.ResumeOK,
		2_000_000_002: postgres.ResumeOK, 2_000_000_003: postgres.ResumeAhead})

	notes := postgres.NewNotifications(db.Pool)
	head, err := notes.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.LastSeq != 2_000_000_002 || len(head.Holes) != 1 || head.Holes[0] != hole {
		t.Fatalf("head %+v, want last seq 2000000002 and the hole %+v", head, hole)
	}
	if got, lost := head.Holes.Lost(46); !lost || got != hole {
		t.Errorf("Holes.Lost(46) = %+v, %v", got, lost)
	}
	if _, lost := head.Holes.Lost(39); lost {
		t.Error("Holes.Lost(39): the old history's last seq is not lost")
	}
	if holes, err := notes.Holes(ctx); err != nil || len(holes) != 1 || holes[0] != hole {
		t.Errorf("Holes() = %+v, %v", holes, err)
	}
	inbox := postgres.NewInbox(db.Pool)
	if o, err := inbox.Opening(ctx, notify.Identity{UserID: "alice"}); err != nil || len(o.Head.Holes) != 1 || o.Head.Holes[0] != hole {
		t.Errorf("Opening's head %+v, %v; want the hole", o.Head, err)
	}
	if r, err := inbox.ResumingOf(ctx, []string{"alice", "bob"}); err != nil || len(r.Holes) != 1 || r.Holes[0] != hole {
		t.Errorf("ResumingOf %+v, %v; want the hole", r, err)
	}

	// Moving the head by hand never takes the sequence back into the hole.
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.stream_head SET last_seq = 100`)
	if last := publishN(t, ctx, db.Pool, 1, "after update"); last != 2_000_000_003 {
		t.Fatalf("last seq after setting the head to 100: %d, want 2000000003", last)
	}
	// A second new history jumps from its head, and both holes are kept.
	if _, err := db.Pool.Exec(ctx, `SELECT notify.enter_history('again')`); err != nil {
		t.Fatal(err)
	}
	holes, err := notes.Holes(ctx)
	if err != nil || len(holes) != 2 || holes[1] != (postgres.Hole{After: 2_000_000_003, First: 4_000_000_000}) {
		t.Fatalf("holes after a second new history: %+v, %v", holes, err)
	}
	resumeStates(t, ctx, db.Pool, map[int64]postgres.ResumePoint{46: postgres.ResumeLost,
		2_000_000_001: postgres.ResumeOK, 3_000_000_000: postgres.ResumeLost})
}

// The pool hook checks every connection it makes, lets a database that is
// not migrated yet through, and logs a new history at WARN.
func TestHistoryHookOnEveryConnection(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	db := pgtest.NewQueued(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	pool, err := postgres.OpenPool(ctx, db.URL, postgres.PoolConfig{MaxConns: 2, AfterConnect: postgres.HistoryHook(log)})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.histories`); n != 1 {
		t.Fatalf("%d histories after the pool's first connection, want 1", n)
	}
	pgtest.Exec(t, ctx, db.Pool, `SELECT notify.enter_history('test')`)
	// A new history recorded elsewhere: this pool's connections are on it
	// already, and a new one finds it the same.
	c1, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := pool.Acquire(ctx) // a second connection: the hook runs again
	if err != nil {
		t.Fatal(err)
	}
	c1.Release()
	c2.Release()
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.histories`); n != 2 {
		t.Fatalf("%d histories, want 2", n)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a connection that found the recorded history warned:\n%s", logs.String())
	}

	// A database with no schema yet: the hook lets the connection through.
	empty, err := pgtest.WithDatabase(pgtest.ServerURL(), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	other, err := postgres.OpenPool(ctx, empty, postgres.PoolConfig{MaxConns: 1, AfterConnect: postgres.HistoryHook(log)})
	if err != nil {
		t.Fatalf("a pool on a database without notifyd's schema: %v", err)
	}
	other.Close()
}

// A role that may not read the cluster's identity gets an error that names
// the GRANT, and the hook refuses the connection rather than publish on it.
func TestEnterHistoryWithoutPrivilegeNamesTheGrant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.NewQueued(t)
	role := fmt.Sprintf("notifyd_hist_%d", time.Now().UnixNano())
	// pg_proc is per database: the REVOKE holds in this test's database only.
	pgtest.Exec(t, ctx, db.Pool, `CREATE ROLE `+role+` NOLOGIN;
		GRANT USAGE ON SCHEMA notify TO `+role+`;
		REVOKE EXECUTE ON FUNCTION pg_catalog.pg_control_system() FROM PUBLIC`)
	t.Cleanup(func() {
		ctx := context.Background()
		pgtest.Exec(t, ctx, db.Pool, `GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO PUBLIC; REVOKE USAGE ON SCHEMA notify FROM `+role+`; DROP ROLE `+role)
	})
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET ROLE `+role); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `RESET ROLE`)
	_, err = postgres.EnterHistory(ctx, conn.Conn())
	if err == nil || !strings.Contains(err.Error(), "GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system()") ||
		!strings.Contains(err.Error(), role) {
		t.Fatalf("error %v, want one naming the GRANT for %s", err, role)
	}
	if hook := postgres.HistoryHook(nil)(ctx, conn.Conn()); hook == nil {
		t.Fatal("the hook let a connection that cannot check its history through")
	}
	t.Log(err)
}

// conn is used by the cluster tests to run one statement on a fresh connection.
func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", postgres.Redact(url), err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
