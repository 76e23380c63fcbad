package sqlfiles_test

import (
	"slices"
	"testing"
	"time"
)

// cancelledRows are the rows a cancel file prints for items keys.
func (w *world) cancelledRows(keys ...string) [][]any {
	return w.itemRows(keys, func(it *item) []any {
		return []any{itoa(it.id), it.nid, ts(it.created), itoa(it.attempts), it.module, it.message, it.lastError}
	})
}

// checkCancel runs a cancel file with vars on w: it must print and cancel
// exactly the items keys (oldest first), print no command tag, and leave
// every other item as seeded.
func checkCancel(t *testing.T, w *world, file string, vars []string, keys ...string) {
	t.Helper()
	out := run(t, w.db.URL, file, vars...)
	checkRows(t, file, out, w.cancelledRows(keys...))
	checkTags(t, out)
	checkCancelled(t, w, out, keys...)
	checkUntouched(t, w, w.others(keys...)...)
}

func testCancelPendingItem(t *testing.T) {
	t.Run("fails the item as cancelled, and retry undoes it", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		checkCancel(t, w, "cancel_pending_item.sql", []string{"id=" + itoa(w.items["due-old"].id)}, "due-old")

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
		checkLeftAlone(t, "cancel_pending_item.sql", "stuck", "no pending queue item has id ")
	})
	t.Run("refuses to run without an id", func(t *testing.T) {
		t.Parallel()
		checkRefusedBare(t, "cancel_pending_item.sql", "needs the queue item id")
	})
}

func testCancelPendingMatching(t *testing.T) {
	before := func(w *world, d time.Duration) string { return ts(w.base.Add(-d)) }
	testFilters(t, "cancel_pending_matching.sql", checkCancel, []filterCase{
		// stuck is an orders item too, but a worker holds it.
		{"module", func(*world) []string { return []string{"module=orders"} }, []string{"due-old", "not-due"}},
		{"created since", func(w *world) []string { return []string{"since=" + before(w, 5*time.Minute)} }, []string{"not-due", "due-new"}},
		{"created until", func(w *world) []string { return []string{"until=" + before(w, 5*time.Minute)} }, []string{"due-old"}},
		{"error_like", func(*world) []string { return []string{"error_like=TIME"} }, []string{"due-old", "not-due"}},
		{"all filters must match", func(w *world) []string {
			return []string{"module=orders", "since=" + before(w, 5*time.Minute), "until=" + ts(w.now)}
		}, []string{"not-due"}},
		{"no match", func(*world) []string { return []string{"module=nothing"} }, nil},
	})
}
