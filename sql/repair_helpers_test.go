package sqlfiles_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// listen subscribes to the workers' doorbell, after the seed committed, so
// what arrives was rung by the file under test.
func listen(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), "LISTEN notify_queue"); err != nil {
		t.Fatalf("listen: %v", err)
	}
	return conn
}

// expectWakeUp waits for a NOTIFY notify_queue on conn.
func expectWakeUp(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no NOTIFY notify_queue after the retry: %v", err)
	}
	if n.Channel != "notify_queue" {
		t.Fatalf("notification on channel %q, want notify_queue", n.Channel)
	}
}

// checkTags checks that psql reported the statements of a repair in order.
func checkTags(t *testing.T, out output, want ...string) {
	t.Helper()
	if !slices.Equal(out.tags, want) {
		t.Errorf("psql printed command tags %q, want %q", out.tags, want)
	}
}

// within reports whether ts lies in the run (the server's now() did).
func within(ts time.Time, out output) bool {
	return !ts.Before(out.before) && !ts.After(out.after)
}

// checkRetried checks that item key is back in line: pending with a fresh
// set of attempts, due from the run, its last_error kept.
func checkRetried(t *testing.T, w *world, out output, keys ...string) {
	t.Helper()
	for _, key := range keys {
		r := w.row(t, key)
		if r.status != "pending" || r.attempts != 0 || r.lockedBy != nil {
			t.Errorf("%s after retry: status %s, attempts %d, locked_by %v; want pending, 0, NULL", key, r.status, r.attempts, r.lockedBy)
		}
		if !within(r.next, out) || !within(r.updated, out) {
			t.Errorf("%s after retry: next_attempt_at %s, updated_at %s; want now() of the run (%s .. %s)", key, r.next, r.updated, out.before, out.after)
		}
		if r.lastError == nil || *r.lastError != w.items[key].lastError {
			t.Errorf("%s after retry: last_error %v, want kept: %q", key, r.lastError, w.items[key].lastError)
		}
	}
}

// checkCancelled checks that item key is failed as cancelled by an admin,
// its attempts and due time as they were.
func checkCancelled(t *testing.T, w *world, out output, keys ...string) {
	t.Helper()
	for _, key := range keys {
		r, it := w.row(t, key), w.items[key]
		if r.status != "failed" || r.lastError == nil || *r.lastError != "cancelled by admin" {
			t.Errorf("%s after cancel: status %s, last_error %v; want failed, 'cancelled by admin'", key, r.status, r.lastError)
		}
		if r.attempts != it.attempts || !r.next.Equal(it.next) || !within(r.updated, out) {
			t.Errorf("%s after cancel: attempts %d, next_attempt_at %s, updated_at %s; want %d, %s, now() of the run",
				key, r.attempts, r.next, r.updated, it.attempts, it.next)
		}
	}
}

// checkUntouched checks that the items keys are as seeded.
func checkUntouched(t *testing.T, w *world, keys ...string) {
	t.Helper()
	for _, key := range keys {
		r, it := w.row(t, key), w.items[key]
		if r.status != it.status || r.attempts != it.attempts || !r.next.Equal(it.next) || !r.updated.Equal(it.updated) {
			t.Errorf("%s changed: status %s, attempts %d, next_attempt_at %s, updated_at %s; seeded %s, %d, %s, %s",
				key, r.status, r.attempts, r.next, r.updated, it.status, it.attempts, it.next, it.updated)
		}
	}
}

// others returns the scenario's keys not in keys.
func (w *world) others(keys ...string) []string {
	var rest []string
	for key := range w.items {
		if !slices.Contains(keys, key) {
			rest = append(rest, key)
		}
	}
	return rest
}

// itemRows are the rows a repair file prints for the items keys, in order,
// row making each.
func (w *world) itemRows(keys []string, row func(it *item) []any) [][]any {
	rows := make([][]any, len(keys))
	for i, key := range keys {
		rows[i] = row(w.items[key])
	}
	return rows
}

// checkLeftAlone runs an item repair file on item key, which is not in the
// state the file acts on: on a fresh scenario it must print no row, warn
// warning followed by the id, and change nothing.
func checkLeftAlone(t *testing.T, file, key, warning string) {
	t.Helper()
	w := seed(t)
	id := itoa(w.items[key].id)
	out := runWarn(t, w.db.URL, file, "id="+id)
	checkRows(t, file+" of "+key, out, nil)
	if !strings.Contains(out.stderr, warning+id) {
		t.Errorf("%s of %s: no warning %q that nothing was done; stderr: %q", file, key, warning+id, out.stderr)
	}
	checkUntouched(t, w, w.others()...)
}

// checkRefusedBare runs a repair file without the variables it needs on a
// fresh scenario: psql must stop, say what is missing (want) and change
// nothing.
func checkRefusedBare(t *testing.T, file, want string) {
	t.Helper()
	w := seed(t)
	out := runRefused(t, w.db.URL, file)
	if !strings.Contains(out.stderr, want) {
		t.Errorf("%s without variables: stderr does not say %q: %q", file, want, out.stderr)
	}
	checkUntouched(t, w, w.others()...)
}

// filterCase is one set of filters for a *_matching repair file and the
// items it must act on.
type filterCase struct {
	name string
	vars func(w *world) []string
	want []string // acted on, in the order the file prints them
}

// testFilters runs file with each case's filters on a fresh scenario, check
// (checkRetry or checkCancel) pinning what it did, then checks that file
// refuses to run with no filter at all.
func testFilters(t *testing.T, file string, check func(t *testing.T, w *world, file string, vars []string, keys ...string), cases []filterCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := seed(t)
			check(t, w, file, tc.vars(w), tc.want...)
		})
	}
	t.Run("refuses an empty filter", func(t *testing.T) {
		t.Parallel()
		checkRefusedBare(t, file, "needs a filter")
	})
}
