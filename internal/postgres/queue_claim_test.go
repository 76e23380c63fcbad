package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

func claimIDs(claims []postgres.Claim) []int64 {
	ids := make([]int64, len(claims))
	for i, c := range claims {
		ids[i] = c.ItemID
	}
	return ids
}

func TestClaim(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)

	items := insertNotifications(t, ctx, db.Pool, 10, "claim")
	// Items 2, 4 and 6 are not due for an hour.
	future := []int64{items[1], items[3], items[5]}
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET next_attempt_at = now() + interval '1 hour' WHERE id = ANY($1)`, future)

	t.Run("takes up to the limit of due items in order", func(t *testing.T) {
		claims, err := q.Claim(ctx, "w1", 5)
		if err != nil {
			t.Fatal(err)
		}
		want := []int64{items[0], items[2], items[4], items[6], items[7]}
		if got := claimIDs(claims); !slices.Equal(got, want) {
			t.Fatalf("claimed %v, want %v", got, want)
		}
		for _, c := range claims {
			if c.Attempts != 1 || c.MaxAttempts != 3 || c.NotificationID == "" {
				t.Errorf("claim %+v: want attempts 1, max_attempts 3 and a notification id", c)
			}
			r := readItem(t, ctx, db.Pool, c.ItemID)
			if r.Status != "processing" || r.LockedBy == nil || *r.LockedBy != "w1" || r.LockedAt == nil || r.Attempts != 1 {
				t.Errorf("item %d after claim: %+v, want processing locked by w1 with attempts 1", c.ItemID, r)
			}
			if r.Seq != nil || r.SentAt != nil {
				t.Errorf("item %d: a claim must not publish", c.ItemID)
			}
		}
	})

	t.Run("takes the rest and skips items not yet due", func(t *testing.T) {
		claims, err := q.Claim(ctx, "w2", 100)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := claimIDs(claims), []int64{items[8], items[9]}; !slices.Equal(got, want) {
			t.Fatalf("claimed %v, want %v", got, want)
		}
		claims, err = q.Claim(ctx, "w3", 100)
		if err != nil || len(claims) != 0 {
			t.Fatalf("claim with nothing due: %v, %v; want none", claims, err)
		}
		for _, id := range future {
			if r := readItem(t, ctx, db.Pool, id); r.Status != "pending" || r.Attempts != 0 || r.LockedBy != nil {
				t.Errorf("item %d not due: %+v, want untouched", id, r)
			}
		}
	})

	t.Run("NextDue reports the earliest pending item", func(t *testing.T) {
		due, ok, err := q.NextDue(ctx, 2*time.Second)
		if err != nil || !ok {
			t.Fatalf("NextDue: %v %v %v", due, ok, err)
		}
		if d := time.Until(due); d < 59*time.Minute || d > 61*time.Minute {
			t.Fatalf("next due in %s, want about 1h", d)
		}
		pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET next_attempt_at = now() - interval '1 second' WHERE id = $1`, future[2])
		claims, err := q.Claim(ctx, "w4", 100)
		if err != nil {
			t.Fatal(err)
		}
		if got := claimIDs(claims); !slices.Equal(got, []int64{future[2]}) {
			t.Fatalf("claimed %v once it was due, want [%d]", got, future[2])
		}
	})
}

func TestClaimConcurrentClaimersNeverShareAnItem(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	const total, claimers, limit = 2000, 8, 7
	items := insertNotifications(t, ctx, db.Pool, total, "race")

	var mu sync.Mutex
	owner := map[int64]string{}
	var dup []string
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for i := range claimers {
		id := fmt.Sprintf("claimer-%d", i)
		wg.Go(func() {
			for {
				claims, err := q.Claim(ctx, id, limit)
				if err != nil {
					errs <- err
					return
				}
				if len(claims) == 0 {
					return
				}
				if len(claims) > limit {
					errs <- fmt.Errorf("%s claimed %d items, limit %d", id, len(claims), limit)
					return
				}
				mu.Lock()
				for _, c := range claims {
					if prev, ok := owner[c.ItemID]; ok {
						dup = append(dup, fmt.Sprintf("item %d claimed by %s and %s", c.ItemID, prev, id))
					}
					owner[c.ItemID] = id
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(dup) > 0 {
		t.Fatalf("%d items claimed twice, e.g. %s", len(dup), dup[0])
	}
	if len(owner) != total {
		t.Fatalf("claimed %d distinct items, want %d", len(owner), total)
	}
	perClaimer := map[string]int{}
	for _, w := range owner {
		perClaimer[w]++
	}
	t.Logf("items per claimer: %v", perClaimer)
	// The database agrees with what each claimer was told.
	rows, err := db.Pool.Query(ctx, `SELECT id, locked_by, attempts FROM notify.queue_items WHERE status = 'processing'`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id int64
		var by string
		var attempts int
		if err := rows.Scan(&id, &by, &attempts); err != nil {
			t.Fatal(err)
		}
		n++
		if owner[id] != by || attempts != 1 {
			t.Errorf("item %d locked by %s with attempts %d; claimer %s was told it had it", id, by, attempts, owner[id])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(items) {
		t.Fatalf("%d items processing, want %d", n, len(items))
	}
}

// TestSweepInTurnWaitsForTheClaimTurn: a worker's first batches (SweepInTurn)
// take the claim turn the recent claims take once they find a pending item,
// so they publish in due order with the other workers' claims; the
// periodic sweep (SweepAndPublish) does not wait for it.
func TestSweepInTurnWaitsForTheClaimTurn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, q := pgtest.NewQueue(t)
	insertQueued(t, db, "left while no worker ran")
	release := holdInTransaction(t, db, `SELECT pg_advisory_xact_lock(1852797545, 4)`)

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if b, err := q.SweepInTurn(short, 10, postgres.SweepCursor{}); err == nil {
		t.Fatalf("SweepInTurn published %d items while another claim held the turn; want it to wait", b.Items)
	}
	release()
	// The abandoned statement may still be waiting on the server, and then
	// publishes the item itself as the turn comes free.
	if _, err := q.SweepInTurn(ctx, 10, postgres.SweepCursor{}); err != nil {
		t.Fatalf("SweepInTurn once the turn is free: %v", err)
	}
	testkit.Eventually(t, 5*time.Second, "the item to be published", func() bool {
		return pgtest.Scalar[string](t, ctx, db.Pool, `SELECT status FROM notify.queue_items`) == "sent"
	})

	insertQueued(t, db, "swept beside a claim")
	holdInTransaction(t, db, `SELECT pg_advisory_xact_lock(1852797545, 4)`)
	short, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if b, err := q.SweepAndPublish(short, 10, postgres.SweepCursor{}); err != nil || b.Items != 1 {
		t.Fatalf("SweepAndPublish beside a held claim turn: %+v, %v; want the item at once", b, err)
	}
}
