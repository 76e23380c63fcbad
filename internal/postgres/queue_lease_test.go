package postgres_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// expireLeases moves the claim time of items an hour into the past, as if
// their worker had stalled that long.
func expireLeases(t *testing.T, ctx context.Context, pool *pgxpool.Pool, ids ...int64) {
	t.Helper()
	if n := pgtest.Exec(t, ctx, pool, `UPDATE notify.queue_items SET locked_at = locked_at - interval '1 hour' WHERE id = ANY($1) AND status = 'processing'`, ids); n != int64(len(ids)) {
		t.Fatalf("expired %d leases, want %d", n, len(ids))
	}
}

func claimOne(t *testing.T, ctx context.Context, q *postgres.Queue, worker string) postgres.Claim {
	t.Helper()
	claims, err := q.Claim(ctx, worker, 1)
	if err != nil || len(claims) != 1 {
		t.Fatalf("%s claim: %v, %v; want one item", worker, claims, err)
	}
	return claims[0]
}

// stalledClaim has worker claim the one notification of a fresh database
// and stall past its lease, which RescueExpired then ends: the claim it
// returns is stale, its item pending again.
func stalledClaim(t *testing.T, ctx context.Context, worker string) (*pgtest.DB, *postgres.Queue, postgres.Claim) {
	t.Helper()
	db, q := pgtest.NewQueue(t)
	insertNotifications(t, ctx, db.Pool, 1, "stalled")
	c := claimOne(t, ctx, q, worker)
	expireLeases(t, ctx, db.Pool, c.ItemID)
	if n, err := q.RescueExpired(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("RescueExpired = %d, %v; want 1", n, err)
	}
	return db, q, c
}

func TestLeaseTokenStopsStalledWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("another worker reclaimed the item", func(t *testing.T) {
		t.Parallel()
		db, q, a := stalledClaim(t, ctx, "A")
		r := readItem(t, ctx, db.Pool, a.ItemID)
		if r.Status != "pending" || r.LockedBy != nil || r.Attempts != 1 || r.LastError == nil ||
			!strings.Contains(*r.LastError, "lease expired: A") || r.NextAttemptAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("rescued item: %+v, want pending now, attempts kept, last_error naming A", r)
		}
		b := claimOne(t, ctx, q, "B")
		if b.ItemID != a.ItemID || b.Attempts != 2 {
			t.Fatalf("B claimed %+v, want item %d at attempt 2", b, a.ItemID)
		}

		// While B holds it, A can neither publish nor fail it.
		held, last, _, err := q.Publish(ctx, "A", []postgres.Claim{a})
		if err != nil || held != 0 || last != 0 {
			t.Fatalf("stale Publish = %d, %d, %v; want 0, 0", held, last, err)
		}
		status, err := q.Fail(ctx, "A", a, "stale", time.Now().Add(time.Hour))
		if err != nil || status != "" {
			t.Fatalf("stale Fail = %q, %v; want \"\"", status, err)
		}
		if n, err := q.Release(ctx, "A", []postgres.Claim{a}); err != nil || n != 0 {
			t.Fatalf("stale Release = %d, %v; want 0", n, err)
		}
		held2 := readItem(t, ctx, db.Pool, a.ItemID)
		if held2.Status != "processing" || held2.LockedBy == nil || *held2.LockedBy != "B" || held2.Attempts != 2 || held2.Seq != nil {
			t.Fatalf("item after A's stale calls: %+v, want still B's, unpublished", held2)
		}
		if head := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT last_seq FROM notify.stream_head`); head != 0 {
			t.Fatalf("stream head moved to %d by a stale publish", head)
		}

		held, last, _, err = q.Publish(ctx, "B", []postgres.Claim{b})
		if err != nil || held != 1 || last != 1 {
			t.Fatalf("B's Publish = %d, %d, %v; want 1, 1", held, last, err)
		}
		published := readItem(t, ctx, db.Pool, a.ItemID)

		// After B published, A's late completion still changes nothing.
		held, last, _, err = q.Publish(ctx, "A", []postgres.Claim{a})
		if err != nil || held != 0 || last != 0 {
			t.Fatalf("late stale Publish = %d, %d, %v; want 0, 0", held, last, err)
		}
		if status, err := q.Fail(ctx, "A", a, "late", time.Now().Add(time.Hour)); err != nil || status != "" {
			t.Fatalf("late stale Fail = %q, %v; want \"\"", status, err)
		}
		if after := readItem(t, ctx, db.Pool, a.ItemID); !reflect.DeepEqual(after, published) {
			t.Fatalf("A's late calls changed the item:\n before %+v\n after  %+v", published, after)
		}
		if head := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT last_seq FROM notify.stream_head`); head != 1 {
			t.Fatalf("stream head %d, want 1", head)
		}
	})

	t.Run("the same worker id reclaimed the item", func(t *testing.T) {
		t.Parallel()
		db, q, old := stalledClaim(t, ctx, "W")
		cur := claimOne(t, ctx, q, "W")
		if cur.ItemID != old.ItemID || cur.Attempts != old.Attempts+1 {
			t.Fatalf("reclaim %+v, want item %d at attempt %d", cur, old.ItemID, old.Attempts+1)
		}
		before := readItem(t, ctx, db.Pool, cur.ItemID)
		if held, _, _, err := q.Publish(ctx, "W", []postgres.Claim{old}); err != nil || held != 0 {
			t.Fatalf("Publish with the old attempt = %d, %v; want 0", held, err)
		}
		if status, err := q.Fail(ctx, "W", old, "old", time.Now().Add(time.Hour)); err != nil || status != "" {
			t.Fatalf("Fail with the old attempt = %q, %v; want \"\"", status, err)
		}
		if n, err := q.Release(ctx, "W", []postgres.Claim{old}); err != nil || n != 0 {
			t.Fatalf("Release with the old attempt = %d, %v; want 0", n, err)
		}
		if after := readItem(t, ctx, db.Pool, cur.ItemID); !reflect.DeepEqual(after, before) {
			t.Fatalf("old-attempt calls changed the item:\n before %+v\n after  %+v", before, after)
		}
		if held, last, _, err := q.Publish(ctx, "W", []postgres.Claim{cur}); err != nil || held != 1 || last != 1 {
			t.Fatalf("Publish with the current attempt = %d, %d, %v; want 1, 1", held, last, err)
		}
	})
}

func TestRescueExpired(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	items := insertNotifications(t, ctx, db.Pool, 3, "rescue")
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET max_attempts = 1 WHERE id = $1`, items[2])
	claims, err := q.Claim(ctx, "gone", 3)
	if err != nil || len(claims) != 3 {
		t.Fatalf("claim: %v %v", claims, err)
	}
	// items[1] was claimed just now: its lease has not expired.
	expireLeases(t, ctx, db.Pool, items[0], items[2])
	if n, err := q.RescueExpired(ctx, time.Minute); err != nil || n != 2 {
		t.Fatalf("RescueExpired = %d, %v; want 2", n, err)
	}
	if r := readItem(t, ctx, db.Pool, items[0]); r.Status != "pending" || r.LockedBy != nil || r.LockedAt != nil || r.Attempts != 1 {
		t.Errorf("expired item with attempts left: %+v, want pending", r)
	}
	if r := readItem(t, ctx, db.Pool, items[1]); r.Status != "processing" || r.LockedBy == nil {
		t.Errorf("item within its lease: %+v, want still processing", r)
	}
	r := readItem(t, ctx, db.Pool, items[2])
	if r.Status != "failed" || r.LastError == nil || *r.LastError != "lease expired: gone did not finish within 1m0s" {
		t.Errorf("expired item at max_attempts: %+v, want failed with the lease message", r)
	}
}

func TestFail(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	if err := q.SetMaxAttempts(ctx, 2); err != nil {
		t.Fatal(err)
	}
	item := insertNotifications(t, ctx, db.Pool, 1, "fail")[0]
	c := claimOne(t, ctx, q, "W")
	if c.MaxAttempts != 2 {
		t.Fatalf("max_attempts %d, want 2 from the setting", c.MaxAttempts)
	}
	next := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	if status, err := q.Fail(ctx, "W", c, "boom 1", next); err != nil || status != "pending" {
		t.Fatalf("first Fail = %q, %v; want pending", status, err)
	}
	r := readItem(t, ctx, db.Pool, item)
	if r.Status != "pending" || !r.NextAttemptAt.Equal(next) || r.LastError == nil || *r.LastError != "boom 1" || r.LockedBy != nil || r.Attempts != 1 {
		t.Fatalf("after first failure: %+v", r)
	}
	if claims, err := q.Claim(ctx, "W", 1); err != nil || len(claims) != 0 {
		t.Fatalf("claimed an item backing off: %v %v", claims, err)
	}
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET next_attempt_at = now() WHERE id = $1`, item)
	c = claimOne(t, ctx, q, "W")
	if status, err := q.Fail(ctx, "W", c, "boom 2", next); err != nil || status != "failed" {
		t.Fatalf("last Fail = %q, %v; want failed", status, err)
	}
	if r := readItem(t, ctx, db.Pool, item); r.Status != "failed" || *r.LastError != "boom 2" || r.Attempts != 2 {
		t.Fatalf("after last failure: %+v", r)
	}
	if claims, err := q.Claim(ctx, "W", 1); err != nil || len(claims) != 0 {
		t.Fatalf("claimed a failed item: %v %v", claims, err)
	}
}

func TestRelease(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	items := insertNotifications(t, ctx, db.Pool, 4, "release")
	// items[3] is on its second attempt when released.
	first := claimOne(t, ctx, q, "W")
	claims, err := q.Claim(ctx, "W", 3)
	if err != nil || len(claims) != 3 {
		t.Fatalf("claim: %v %v", claims, err)
	}
	expireLeases(t, ctx, db.Pool, items[3])
	if _, err := q.RescueExpired(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	again := claimOne(t, ctx, q, "W")
	if again.ItemID != items[3] || again.Attempts != 2 {
		t.Fatalf("reclaim %+v, want item %d attempt 2", again, items[3])
	}
	toRelease := []postgres.Claim{first, claims[0], claims[1], again}

	if n, err := q.Release(ctx, "other", toRelease); err != nil || n != 0 {
		t.Fatalf("Release by another worker = %d, %v; want 0", n, err)
	}
	if n, err := q.Release(ctx, "W", toRelease); err != nil || n != 4 {
		t.Fatalf("Release = %d, %v; want 4", n, err)
	}
	wantAttempts := map[int64]int{items[0]: 0, items[1]: 0, items[2]: 0, items[3]: 1}
	for _, id := range items {
		r := readItem(t, ctx, db.Pool, id)
		if r.Status != "pending" || r.LockedBy != nil || r.LockedAt != nil || r.Attempts != wantAttempts[id] {
			t.Errorf("released item %d: %+v, want pending with attempts %d", id, r, wantAttempts[id])
		}
	}
	if n, err := q.Release(ctx, "W", toRelease); err != nil || n != 0 {
		t.Fatalf("second Release = %d, %v; want 0", n, err)
	}
	claims, err = q.Claim(ctx, "X", 10)
	if err != nil || len(claims) != 4 {
		t.Fatalf("claim after release: %d items, %v; want all 4 back", len(claims), err)
	}
}
