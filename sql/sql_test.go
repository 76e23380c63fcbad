package sqlfiles_test

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	sqlfiles "github.com/notifyd/notifyd/sql"
)

// fileTests pins the answer of every admin query file: each runs the file
// with psql against a seeded database and checks what it printed (and,
// for the repairs, the table afterwards). A file without an entry fails
// TestFiles.
var fileTests = map[string]func(t *testing.T){
	"queue_counts.sql":            testQueueCounts,
	"due_pending.sql":             testDuePending,
	"stuck_processing.sql":        testStuckProcessing,
	"failures_by_error.sql":       testFailuresByError,
	"retry_failed_item.sql":       testRetryFailedItem,
	"retry_failed_matching.sql":   testRetryFailedMatching,
	"retry_failed_all.sql":        testRetryFailedAll,
	"cancel_pending_item.sql":     testCancelPendingItem,
	"cancel_pending_matching.sql": testCancelPendingMatching,
	"notifications_for_user.sql":  testNotificationsForUser,
	"throughput_per_minute.sql":   testThroughputPerMinute,
	"stream_positions.sql":        testStreamPositions,
	"user_inbox.sql":              testUserInbox,
	"unread_by_user.sql":          testUnreadByUser,
	"inbox_states.sql":            testInboxStates,
	"unsnooze_user.sql":           testUnsnoozeUser,
	"action_clicks.sql":           testActionClicks,
}

func sqlFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(sqlfiles.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no sql files embedded (err %v)", err)
	}
	return names
}

func TestFiles(t *testing.T) {
	t.Parallel()
	names := sqlFiles(t)
	for name := range fileTests {
		if !slices.Contains(names, name) {
			t.Errorf("fileTests has a test for %s, which is not in sql/", name)
		}
	}
	for _, name := range names {
		test, ok := fileTests[name]
		t.Run(strings.TrimSuffix(name, ".sql"), func(t *testing.T) {
			if !ok {
				t.Fatalf("sql/%s has no test: add one to fileTests", name)
			}
			t.Parallel()
			test(t)
		})
	}
}

var (
	optionalVar = regexp.MustCompile(`(?m)^\\if :\{\?(\w+)\}`)
	usedVar     = regexp.MustCompile(`:'(\w+)'`)
)

// TestHeaders checks that each file starts by saying what it answers and
// how to run it, and documents every psql variable it reads.
func TestHeaders(t *testing.T) {
	t.Parallel()
	for _, name := range sqlFiles(t) {
		b, err := fs.ReadFile(sqlfiles.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		header, _, _ := strings.Cut(text, "\n\n\\")
		for _, want := range []string{"-- " + name + ": ", "-- Run:\n", `psql "$DATABASE_URL"`, "-f sql/" + name, "-- Parameters", "-- Output"} {
			if !strings.Contains(header, want) {
				t.Errorf("%s: the header comment lacks %q", name, want)
			}
		}
		if !strings.HasPrefix(text, "-- "+name+": ") {
			t.Errorf("%s: does not start with \"-- %s: <the question it answers>\"", name, name)
		}
		if !strings.Contains(text, "\\set ON_ERROR_STOP on\n") {
			t.Errorf("%s: does not set ON_ERROR_STOP itself (an admin may forget -v ON_ERROR_STOP=1)", name)
		}
		vars := map[string]bool{}
		for _, m := range optionalVar.FindAllStringSubmatch(text, -1) {
			vars[m[1]] = true
		}
		for _, m := range usedVar.FindAllStringSubmatch(text, -1) {
			vars[m[1]] = true
		}
		for v := range vars {
			if !regexp.MustCompile(`(?m)^--   ` + v + ` `).MatchString(header) {
				t.Errorf("%s: reads psql variable %s, which its Parameters section does not describe", name, v)
			}
			if !strings.Contains(text, "\\if :{?"+v+"}") {
				t.Errorf("%s: reads psql variable %s without checking it is set (\\if :{?%s})", name, v, v)
			}
		}
	}
}
