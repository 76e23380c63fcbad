package sqlfiles_test

import (
	"testing"
	"time"
)

// retriedRows are the rows a retry file prints for items keys.
func (w *world) retriedRows(keys ...string) [][]any {
	return w.itemRows(keys, func(it *item) []any {
		return []any{itoa(it.id), it.nid, itoa(it.attempts), ts(it.updated), it.lastError}
	})
}

func testRetryFailedItem(t *testing.T) {
	t.Run("puts the item back and wakes a worker", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		checkRetry(t, w, "retry_failed_item.sql", []string{"id=" + itoa(w.items["failed-a1"].id)}, "failed-a1")
	})
	t.Run("leaves an item that is not failed alone", func(t *testing.T) {
		t.Parallel()
		checkLeftAlone(t, "retry_failed_item.sql", "due-old", "no failed queue item has id ")
	})
	t.Run("refuses to run without an id", func(t *testing.T) {
		t.Parallel()
		checkRefusedBare(t, "retry_failed_item.sql", "needs the queue item id")
	})
}

func testRetryFailedMatching(t *testing.T) {
	testFilters(t, "retry_failed_matching.sql", checkRetry, []filterCase{
		{"error_like matches anywhere", func(*world) []string { return []string{"error_like=refused"} }, []string{"failed-a1", "failed-a2"}},
		{"error_like with a percent sign is the pattern, case-insensitive", func(*world) []string { return []string{"error_like=PAYLOAD%"} }, []string{"failed-b"}},
		{"since is when it failed", func(w *world) []string { return []string{"since=" + ts(w.base.Add(-30*time.Minute))} }, []string{"failed-a2", "failed-b"}},
		{"both must match", func(w *world) []string {
			return []string{"error_like=refused", "since=" + ts(w.base.Add(-30*time.Minute))}
		}, []string{"failed-a2"}},
		{"a quote in the pattern is data", func(*world) []string { return []string{"error_like=x' OR true OR '"} }, nil},
	})
}

func testRetryFailedAll(t *testing.T) {
	checkRetry(t, seed(t), "retry_failed_all.sql", nil, "failed-a1", "failed-a2", "failed-b")
}

// checkRetry runs a retry file with vars on w: it must print and retry
// exactly the items keys (oldest failure first) in one transaction that
// rings the workers' doorbell, and leave every other item as seeded.
func checkRetry(t *testing.T, w *world, file string, vars []string, keys ...string) {
	t.Helper()
	l := listen(t, w.db.URL)
	out := run(t, w.db.URL, file, vars...)
	checkRows(t, file, out, w.retriedRows(keys...))
	checkTags(t, out, "BEGIN", "NOTIFY", "COMMIT")
	checkRetried(t, w, out, keys...)
	checkUntouched(t, w, w.others(keys...)...)
	expectWakeUp(t, l)
}
