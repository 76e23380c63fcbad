package sqlfiles_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// cancelledRows are the rows a cancel file prints for items keys.
func (w *world) cancelledRows(keys ...string) [][]any {
	rows := make([][]any, len(keys))
	for i, key := range keys {
		it := w.items[key]
		rows[i] = []any{itoa(it.id), it.nid, ts(it.created), itoa(it.attempts), it.module, it.message, it.lastError}
	}
	return rows
}

func testCancelPendingItem(t *testing.T) {
	t.Run("fails the item as cancelled, and retry undoes it", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		out := run(t, w.db.URL, "cancel_pending_item.sql", "id="+itoa(w.items["due-old"].id))
		checkRows(t, "cancel_pending_item", out, w.cancelledRows("due-old"))
		checkCancelled(t, w, out, "due-old")
		checkUntouched(t, w, w.others("due-old")...)

		failures := run(t, w.db.URL, "failures_by_error.sql")
		listed := slices.ContainsFunc(failures.rows, func(r []string) bool {
			return r[0] == "cancelled by admin" && r[1] == "1" && r[4] == "{"+itoa(w.items["due-old"].id)+"}"
		})
		if !listed {
			t.Errorf("failures_by_error after the cancel does not list it under 'cancelled by admin':\n%s", showRows(failures.rows))
		}
		back := run(t, w.db.URL, "retry_failed_matching.sql", "error_like=cancelled by admin")
		if len(back.rows) != 1 || back.rows[0][0] != itoa(w.items["due-old"].id) {
			t.Errorf("retry_failed_matching -v error_like='cancelled by admin' retried:\n%s", showRows(back.rows))
		}
		if r := w.row(t, "due-old"); r.status != "pending" {
			t.Errorf("due-old after retrying its cancellation: %s, want pending", r.status)
		}
	})
	t.Run("leaves an item a worker holds alone", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		id := itoa(w.items["stuck"].id)
		out := runWarn(t, w.db.URL, "cancel_pending_item.sql", "id="+id)
		checkRows(t, "cancel_pending_item of a processing item", out, nil)
		if !strings.Contains(out.stderr, "no pending queue item has id "+id) {
			t.Errorf("no warning that nothing was cancelled; stderr: %q", out.stderr)
		}
		checkUntouched(t, w, w.others()...)
	})
	t.Run("refuses to run without an id", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		out := runRefused(t, w.db.URL, "cancel_pending_item.sql")
		if !strings.Contains(out.stderr, "needs the queue item id") {
			t.Errorf("stderr does not say what is missing: %q", out.stderr)
		}
		checkUntouched(t, w, w.others()...)
	})
}

func testCancelPendingMatching(t *testing.T) {
	before := func(w *world, d time.Duration) string { return ts(w.base.Add(-d)) }
	cases := []struct {
		name string
		vars func(w *world) []string
		want []string // cancelled, oldest first
	}{
		// stuck is an orders item too, but a worker holds it.
		{"module", func(*world) []string { return []string{"module=orders"} }, []string{"due-old", "not-due"}},
		{"created since", func(w *world) []string { return []string{"since=" + before(w, 5*time.Minute)} }, []string{"not-due", "due-new"}},
		{"created until", func(w *world) []string { return []string{"until=" + before(w, 5*time.Minute)} }, []string{"due-old"}},
		{"error_like", func(*world) []string { return []string{"error_like=TIME"} }, []string{"due-old", "not-due"}},
		{"all filters must match", func(w *world) []string {
			return []string{"module=orders", "since=" + before(w, 5*time.Minute), "until=" + ts(w.now)}
		}, []string{"not-due"}},
		{"no match", func(*world) []string { return []string{"module=nothing"} }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := seed(t)
			out := run(t, w.db.URL, "cancel_pending_matching.sql", tc.vars(w)...)
			checkRows(t, "cancel_pending_matching", out, w.cancelledRows(tc.want...))
			checkTags(t, out)
			checkCancelled(t, w, out, tc.want...)
			checkUntouched(t, w, w.others(tc.want...)...)
		})
	}
	t.Run("refuses an empty filter", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		out := runRefused(t, w.db.URL, "cancel_pending_matching.sql")
		if !strings.Contains(out.stderr, "needs a filter") {
			t.Errorf("stderr does not say a filter is needed: %q", out.stderr)
		}
		checkUntouched(t, w, w.others()...)
	})
}
