package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// holdSnapshot opens a REPEATABLE READ transaction that has read the table,
// as a forgotten psql session, a long report or pg_dump does: until it ends,
// vacuum removes no row version newer than its snapshot.
func holdSnapshot(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect the snapshot holder: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.WithoutCancel(ctx)) })
	if _, err := conn.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT count(*) FROM notify.notifications`); err != nil {
		t.Fatal(err)
	}
}

// claimBuffers runs a claim's index walk under EXPLAIN (ANALYZE, BUFFERS)
// and returns how many buffers (index and heap pages) it touched: a walk
// over dead entries visits their heap pages too.
func claimBuffers(t *testing.T, ctx context.Context, db *pgtest.DB, where string) float64 {
	t.Helper()
	var plan []byte
	err := db.Pool.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM notify.queue_items
		WHERE status = 'pending' AND next_attempt_at <= now() AND `+where+`
		ORDER BY next_attempt_at, id LIMIT 500`).Scan(&plan)
	if err != nil {
		t.Fatalf("explain the claim: %v", err)
	}
	var doc []struct {
		Plan struct {
			Hit  float64 `json:"Shared Hit Blocks"`
			Read float64 `json:"Shared Read Blocks"`
		}
	}
	if err := json.Unmarshal(plan, &doc); err != nil {
		t.Fatal(err)
	}
	return doc[0].Plan.Hit + doc[0].Plan.Read
}

// TestClaimUnderHeldSnapshot: while another session holds a snapshot, every
// item the workers took leaves a dead entry in the claim index that vacuum
// cannot remove. The recent claim must not read them (the old claim, which
// walked the index from its start, read every one on every batch: commit ->
// receipt p99 reached 133 s within two minutes at 1,000 inserts/s); the
// sweep still finds an item the recent claim cannot see.
func TestClaimUnderHeldSnapshot(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	holdSnapshot(t, ctx, db.URL)

	const items = 5000
	insertNotifications(t, ctx, db.Pool, items, "churn")
	// An item queued long ago (its producer's transaction stayed open, or no
	// worker ran): outside the recent claim's lookback.
	late := insertNotifications(t, ctx, db.Pool, 1, "late")[0]
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET next_attempt_at = now() - interval '1 hour' WHERE id = $1`, late)
	// Everything but it is due recently; the churn items are sent through
	// the recent claim, leaving their dead entries behind.
	for sent := 0; sent < items; {
		b, err := q.ClaimAndPublish(ctx, 500, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if b.Items == 0 {
			t.Fatalf("recent claim found nothing after %d of %d", sent, items)
		}
		sent += b.Items
	}
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.queue_items WHERE status = 'pending'`); n != 1 {
		t.Fatalf("%d pending after the churn, want only the late item", n)
	}
	// The dead entries are still there: the whole index holds them all.
	whole := claimBuffers(t, ctx, db, "true")
	if whole < 40 {
		t.Fatalf("a walk of the whole claim index touched %.0f buffers; want many (the held snapshot keeps %d dead entries): the test no longer shows the problem", whole, items)
	}

	// Three new items, due now: the recent claim's walk reads them, not
	// the 5,000 entries before them (once those are older than its
	// lookback, here half a second).
	time.Sleep(600 * time.Millisecond)
	insertNotifications(t, ctx, db.Pool, 3, "fresh")
	if recent := claimBuffers(t, ctx, db, "next_attempt_at > now() - interval '500 milliseconds'"); recent > 15 {
		t.Errorf("the recent claim touched %.0f buffers for 3 new items (a walk of the whole index: %.0f); want a few: it reads dead entries", recent, whole)
	}
	b, err := q.ClaimAndPublish(ctx, 500, 500*time.Millisecond)
	if err != nil || b.Items != 3 {
		t.Fatalf("recent claim: %+v, %v; want the 3 new items", b, err)
	}

	// The late item is the sweep's.
	b, err = q.SweepAndPublish(ctx, 500, postgres.SweepCursor{})
	if err != nil || b.Items != 1 || b.LastSeq == 0 {
		t.Fatalf("sweep: %+v, %v; want the late item published", b, err)
	}
	if b.Next.ID != late {
		t.Errorf("sweep cursor %+v, want it at the late item %d", b.Next, late)
	}
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.queue_items WHERE status <> 'sent'`); n != 0 {
		t.Fatalf("%d items not sent", n)
	}
}

// TestRepairedItemIsDueNow: an admin sets a failed item back to pending
// (sql/retry_failed_item.sql does only that): it is due at once, so the
// recent claim takes it without waiting for a sweep.
func TestRepairedItemIsDueNow(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	id := insertNotifications(t, ctx, db.Pool, 1, "repair")[0]
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'failed', attempts = 3,
		next_attempt_at = now() - interval '3 days', last_error = 'boom' WHERE id = $1`, id)
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'pending', attempts = 0 WHERE id = $1`, id)
	if b, err := q.ClaimAndPublish(ctx, 10, 2*time.Second); err != nil || b.Items != 1 {
		t.Fatalf("recent claim after the repair: %+v, %v; want the repaired item", b, err)
	}
	// A retry the worker schedules keeps its back-off.
	id = insertNotifications(t, ctx, db.Pool, 1, "backoff")[0]
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'processing', locked_by = 'w', locked_at = now() WHERE id = $1`, id)
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'pending', locked_by = NULL, locked_at = NULL,
		next_attempt_at = now() + interval '1 hour' WHERE id = $1`, id)
	if d := pgtest.Scalar[float64](t, ctx, db.Pool, `SELECT extract(epoch FROM next_attempt_at - now()) FROM notify.queue_items WHERE id = $1`, id); d < 3500 {
		t.Fatalf("a retry scheduled an hour ahead is due in %.0f s", d)
	}
}

// TestStreamHeadView: the stream head is read from the seqs themselves, and
// updating it (what an admin does after a restore) moves the sequence the
// next seqs come from, never below a seq already given.
func TestStreamHeadView(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	insertNotifications(t, ctx, db.Pool, 3, "head")
	if _, err := q.ClaimAndPublish(ctx, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT last_seq FROM notify.stream_head`); got != 3 {
		t.Fatalf("head %d after 3 published, want 3", got)
	}
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.stream_head SET last_seq = 1000`)
	insertNotifications(t, ctx, db.Pool, 1, "after")
	b, err := q.ClaimAndPublish(ctx, 10, time.Minute)
	if err != nil || b.LastSeq != 1001 {
		t.Fatalf("publish after moving the head to 1000: %+v, %v; want seq 1001", b, err)
	}
	// Moving it back is refused by the sequence's floor: no seq is reused.
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.stream_head SET last_seq = 2`)
	insertNotifications(t, ctx, db.Pool, 1, "again")
	if b, err := q.ClaimAndPublish(ctx, 10, time.Minute); err != nil || b.LastSeq != 1002 {
		t.Fatalf("publish after moving the head back to 2: %+v, %v; want seq 1002", b, err)
	}
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.stream_head SET truncated_before = 7`)
	var last, truncated int64
	if err := db.Pool.QueryRow(ctx, `SELECT last_seq, truncated_before FROM notify.stream_head`).Scan(&last, &truncated); err != nil {
		t.Fatal(err)
	}
	if last != 1002 || truncated != 7 {
		t.Fatalf("head (%d, %d), want (1002, 7)", last, truncated)
	}
}

// TestOldestSnapshotAmongEqualXmins: snapshots taken while the same
// transaction is the oldest running one share their xmin; of those, the one
// held longest is the oldest, and its age is reported.
func TestOldestSnapshotAmongEqualXmins(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewQueued(t)
	begin := func(url, isolation, query string) (*pgx.Conn, string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.WithoutCancel(ctx)) })
		if _, err := conn.Exec(ctx, `BEGIN ISOLATION LEVEL `+isolation); err != nil {
			t.Fatal(err)
		}
		var out string
		if err := conn.QueryRow(ctx, query).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return conn, out
	}
	const snapshotXmin = `SELECT backend_xmin::text FROM pg_stat_activity WHERE pid = pg_backend_pid()`
	// While the anchor (a transaction with an id, in another database of
	// the cluster, so that OldestSnapshot does not see it) runs and is the
	// oldest in the cluster, every snapshot taken has its id as xmin,
	// whatever the other tests' databases run meanwhile.
	elsewhere, err := pgtest.WithDatabase(db.URL, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		anchor, xid := begin(elsewhere, "READ COMMITTED", `SELECT pg_current_xact_id()::text`)
		holder, xmin := begin(db.URL, "REPEATABLE READ", snapshotXmin)
		if xmin == xid {
			break
		}
		// An older transaction ran elsewhere in the cluster: again.
		holder.Close(ctx)
		anchor.Close(ctx)
		if attempt == 20 {
			t.Fatalf("the held snapshot's xmin %s is never the anchor's id %s", xmin, xid)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for range 4 {
		begin(db.URL, "REPEATABLE READ", snapshotXmin)
	}
	var distinct int
	if err := db.Pool.QueryRow(ctx, `SELECT count(DISTINCT backend_xmin::text) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid()`).Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != 1 {
		t.Fatalf("%d distinct xmins among the snapshots, want 1 (the anchor's)", distinct)
	}
	s, err := postgres.NewQueue(db.Pool).OldestSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Age < 250*time.Millisecond {
		t.Fatalf("oldest snapshot age %v (pid %d), want the held one's, at least 250ms", s.Age, s.PID)
	}
}
