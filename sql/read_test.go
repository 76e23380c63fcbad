package sqlfiles_test

import (
	"strings"
	"testing"
	"time"
)

func testQueueCounts(t *testing.T) {
	w := seed(t)
	it := w.items
	out := run(t, w.db.URL, "queue_counts.sql")
	checkRows(t, "queue_counts", out, [][]any{
		{"pending", "3", ts(it["due-old"].created), age{it["due-old"].created}, "2", ts(it["due-old"].next)},
		{"processing", "2", ts(it["stuck"].created), age{it["stuck"].created}, "", ""},
		{"failed", "3", ts(it["failed-a1"].created), age{it["failed-a1"].created}, "", ""},
		{"sent", "4", ts(it["old-alice"].created), age{it["old-alice"].created}, "", ""},
	})

	t.Run("empty queue still lists every status", func(t *testing.T) {
		t.Parallel()
		db := seed(t).db
		if _, err := db.Pool.Exec(t.Context(), `DELETE FROM notify.notifications`); err != nil {
			t.Fatal(err)
		}
		checkRows(t, "queue_counts on an empty queue", run(t, db.URL, "queue_counts.sql"), [][]any{
			{"pending", "0", "", "", "0", ""},
			{"processing", "0", "", "", "", ""},
			{"failed", "0", "", "", "", ""},
			{"sent", "0", "", "", "", ""},
		})
	})
}

func testDuePending(t *testing.T) {
	w := seed(t)
	row := func(key string) []any {
		it := w.items[key]
		return []any{itoa(it.id), it.nid, ts(it.next), age{it.next}, itoa(it.attempts), "3", ts(it.created), it.module, it.lastError}
	}
	// not-due is pending too, but waits out its back-off.
	checkRows(t, "due_pending", run(t, w.db.URL, "due_pending.sql"), [][]any{row("due-old"), row("due-new")})
	checkRows(t, "due_pending -v limit=1", run(t, w.db.URL, "due_pending.sql", "limit=1"), [][]any{row("due-old")})
}

func testStuckProcessing(t *testing.T) {
	w := seed(t)
	row := func(key string) []any {
		it := w.items[key]
		return []any{itoa(it.id), it.nid, it.lockedBy, ts(it.lockedAt), age{it.lockedAt}, itoa(it.attempts), "3", ts(it.created)}
	}
	// The default lease (30s): only the item held for ten minutes; fresh
	// was claimed two seconds before the seed.
	checkRows(t, "stuck_processing", run(t, w.db.URL, "stuck_processing.sql"), [][]any{row("stuck")})
	checkRows(t, "stuck_processing -v lease='1 second'", run(t, w.db.URL, "stuck_processing.sql", "lease=1 second"),
		[][]any{row("stuck"), row("fresh")})
	checkRows(t, "stuck_processing -v lease='1 hour'", run(t, w.db.URL, "stuck_processing.sql", "lease=1 hour"), nil)
}

func testFailuresByError(t *testing.T) {
	w := seed(t)
	it := w.items
	checkRows(t, "failures_by_error", run(t, w.db.URL, "failures_by_error.sql"), [][]any{
		{"connection refused", "2", ts(it["failed-a1"].updated), ts(it["failed-a2"].updated),
			"{" + itoa(it["failed-a2"].id) + "," + itoa(it["failed-a1"].id) + "}", "{billing,orders}"},
		{"payload too large", "1", ts(it["failed-b"].updated), ts(it["failed-b"].updated),
			"{" + itoa(it["failed-b"].id) + "}", "{orders}"},
	})
}

func testStreamPositions(t *testing.T) {
	w := seed(t)
	it := w.items
	published := it["sent-3"].published
	// Eight of the twelve notifications have no seq yet; failed-a1 is the
	// oldest of them.
	checkRows(t, "stream_positions", run(t, w.db.URL, "stream_positions.sql"), [][]any{
		{"4", ts(published), age{published}, "0", "8", ts(it["failed-a1"].created)},
	})

	t.Run("truncated and all published", func(t *testing.T) {
		t.Parallel()
		// A seed of its own, with its own times: the outer one's may lie in
		// another second (seeds place rows relative to now).
		w := seed(t)
		db, published := w.db, w.items["sent-3"].published
		if _, err := db.Pool.Exec(t.Context(), `DELETE FROM notify.notifications WHERE seq IS NULL OR seq < 2;
			UPDATE notify.stream_head SET truncated_before = 1`); err != nil {
			t.Fatal(err)
		}
		checkRows(t, "stream_positions", run(t, db.URL, "stream_positions.sql"), [][]any{
			{"4", ts(published), age{published}, "1", "0", ""},
		})
	})
}

// TestParseInterval pins the reading of the age columns the tests check.
func TestParseInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"00:00:00", 0},
		{"00:05:07", 5*time.Minute + 7*time.Second},
		{"1 day 02:00:00", 26 * time.Hour},
		{"3 days 00:00:01", 72*time.Hour + time.Second},
		{"00:00:01.5", 1500 * time.Millisecond},
	} {
		got, err := parseInterval(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseInterval(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "5 minutes", "-00:00:01", "1 mon 00:00:00"} {
		if _, err := parseInterval(bad); err == nil || !strings.Contains(err.Error(), "not an interval") {
			t.Errorf("parseInterval(%q) accepted", bad)
		}
	}
}
