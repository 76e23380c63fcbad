package sqlfiles_test

import (
	"strings"
	"testing"
	"time"
)

// retriedRow is the row a retry file prints for item key.
func (w *world) retriedRow(key string) []any {
	it := w.items[key]
	return []any{itoa(it.id), it.nid, itoa(it.attempts), ts(it.updated), it.lastError}
}

func (w *world) retriedRows(keys ...string) [][]any {
	rows := make([][]any, len(keys))
	for i, key := range keys {
		rows[i] = w.retriedRow(key)
	}
	return rows
}

func testRetryFailedItem(t *testing.T) {
	t.Run("puts the item back and wakes a worker", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		l := listen(t, w.db.URL)
		out := run(t, w.db.URL, "retry_failed_item.sql", "id="+itoa(w.items["failed-a1"].id))
		checkRows(t, "retry_failed_item", out, w.retriedRows("failed-a1"))
		checkTags(t, out, "BEGIN", "NOTIFY", "COMMIT")
		checkRetried(t, w, out, "failed-a1")
		checkUntouched(t, w, w.others("failed-a1")...)
		expectWakeUp(t, l)
	})
	t.Run("leaves an item that is not failed alone", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		id := itoa(w.items["due-old"].id)
		out := runWarn(t, w.db.URL, "retry_failed_item.sql", "id="+id)
		checkRows(t, "retry_failed_item of a pending item", out, nil)
		if !strings.Contains(out.stderr, "no failed queue item has id "+id) {
			t.Errorf("no warning that nothing was retried; stderr: %q", out.stderr)
		}
		checkUntouched(t, w, w.others()...)
	})
	t.Run("refuses to run without an id", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		out := runRefused(t, w.db.URL, "retry_failed_item.sql")
		if !strings.Contains(out.stderr, "needs the queue item id") {
			t.Errorf("stderr does not say what is missing: %q", out.stderr)
		}
		checkUntouched(t, w, w.others()...)
	})
}

func testRetryFailedMatching(t *testing.T) {
	cases := []struct {
		name string
		vars func(w *world) []string
		want []string // retried, oldest failure first
	}{
		{"error_like matches anywhere", func(*world) []string { return []string{"error_like=refused"} }, []string{"failed-a1", "failed-a2"}},
		{"error_like with a percent sign is the pattern, case-insensitive", func(*world) []string { return []string{"error_like=PAYLOAD%"} }, []string{"failed-b"}},
		{"since is when it failed", func(w *world) []string { return []string{"since=" + ts(w.base.Add(-30*time.Minute))} }, []string{"failed-a2", "failed-b"}},
		{"both must match", func(w *world) []string {
			return []string{"error_like=refused", "since=" + ts(w.base.Add(-30*time.Minute))}
		}, []string{"failed-a2"}},
		{"a quote in the pattern is data", func(*world) []string { return []string{"error_like=x' OR true OR '"} }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := seed(t)
			l := listen(t, w.db.URL)
			out := run(t, w.db.URL, "retry_failed_matching.sql", tc.vars(w)...)
			checkRows(t, "retry_failed_matching", out, w.retriedRows(tc.want...))
			checkTags(t, out, "BEGIN", "NOTIFY", "COMMIT")
			checkRetried(t, w, out, tc.want...)
			checkUntouched(t, w, w.others(tc.want...)...)
			expectWakeUp(t, l)
		})
	}
	t.Run("refuses an empty filter", func(t *testing.T) {
		t.Parallel()
		w := seed(t)
		out := runRefused(t, w.db.URL, "retry_failed_matching.sql")
		if !strings.Contains(out.stderr, "needs a filter") {
			t.Errorf("stderr does not say a filter is needed: %q", out.stderr)
		}
		checkUntouched(t, w, w.others()...)
	})
}

func testRetryFailedAll(t *testing.T) {
	w := seed(t)
	l := listen(t, w.db.URL)
	out := run(t, w.db.URL, "retry_failed_all.sql")
	failed := []string{"failed-a1", "failed-a2", "failed-b"}
	checkRows(t, "retry_failed_all", out, w.retriedRows(failed...))
	checkTags(t, out, "BEGIN", "NOTIFY", "COMMIT")
	checkRetried(t, w, out, failed...)
	checkUntouched(t, w, w.others(failed...)...)
	expectWakeUp(t, l)
}
