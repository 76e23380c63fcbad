package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

func TestRecent(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)

	items := insertNotifications(t, ctx, db.Pool, 30, "recent")
	// Item 3 failed an attempt a moment ago (so changed last); item 5 failed
	// for good just before, with an error longer than the page shows.
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'failed', attempts = 3, last_error = repeat('x', 600),
		updated_at = now() + interval '1 second' WHERE id = $1`, items[4])
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET attempts = 1, last_error = 'timeout',
		next_attempt_at = now() + interval '1 minute', updated_at = now() + interval '2 seconds' WHERE id = $1`, items[2])

	got, err := q.Recent(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("got %d items, want 20", len(got))
	}
	first, second := got[0], got[1]
	if first.ID != items[2] || first.Status != "pending" || first.Attempts != 1 || first.LastError != "timeout" ||
		first.Message != "recent 3" || first.MaxAttempts != 3 || !first.NextAttemptAt.After(first.UpdatedAt) {
		t.Errorf("first item %+v, want item 3 pending after a timeout, next attempt in a minute", first)
	}
	if second.ID != items[4] || second.Status != "failed" || second.Attempts != 3 || len(second.LastError) != 500 ||
		!strings.HasPrefix(second.LastError, "xxx") || second.NotificationID == "" {
		t.Errorf("second item %+v, want item 5 failed with its error cut at 500 characters", second)
	}
	// Then the rest, the newest insert first.
	for i := 2; i < len(got); i++ {
		if got[i].UpdatedAt.After(got[i-1].UpdatedAt) ||
			(got[i].UpdatedAt.Equal(got[i-1].UpdatedAt) && got[i].ID > got[i-1].ID) {
			t.Fatalf("items %d and %d out of order: %+v then %+v", i-1, i, got[i-1], got[i])
		}
	}
	if got[2].ID != items[29] {
		t.Errorf("third item is %d, want the last inserted, %d", got[2].ID, items[29])
	}

	// A backlog: the worker has just published the oldest items (so they
	// changed last), far below the newest ids; they come first.
	published := []int64{items[0], items[1], items[3], items[5], items[6], items[7], items[8], items[9]}
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.queue_items SET status = 'sent', attempts = 1, sent_at = now(),
		updated_at = now() + interval '3 seconds' WHERE id = ANY($1)`, published)
	got, err = q.Recent(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	var firstIDs []int64
	for _, it := range got[:len(published)] {
		firstIDs = append(firstIDs, it.ID)
	}
	slices.Reverse(published)
	if !slices.Equal(firstIDs, published) || got[len(published)].ID != items[2] {
		t.Errorf("during a backlog the first items are %v then %d, want the ones just published %v, then item 3", firstIDs, got[len(published)].ID, published)
	}

	for _, limit := range []int{0, -5, 1000} {
		got, err := q.Recent(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]int{0: 1, -5: 1, 1000: 30}[limit]
		if len(got) != want {
			t.Errorf("Recent(%d) gave %d items, want %d", limit, len(got), want)
		}
	}
}
