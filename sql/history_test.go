package sqlfiles_test

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// userRow is the row notifications_for_user prints for item key.
func (w *world) userRow(key, matchedBy string) []any {
	it := w.items[key]
	seq := ""
	if it.seq != 0 {
		seq = itoa(it.seq)
	}
	return []any{seq, it.nid, matchedBy, it.status, ts(it.created), ts(it.published), itoa(it.attempts), it.lastError, it.module, it.severity, it.message}
}

func testNotificationsForUser(t *testing.T) {
	w := seed(t)
	ago := func(d time.Duration) string { return ts(w.base.Add(-d)) }
	cases := []struct {
		name string
		vars []string
		want [][]any
	}{
		// The last day by default; failed-b names an empty role list, so nobody;
		// old-alice is three days old.
		{"direct, by role and to everyone", []string{"user_id=alice", "roles={ADMIN,USER}"}, [][]any{
			w.userRow("failed-a2", "role ADMIN,USER"),
			w.userRow("sent-1", "user"),
			w.userRow("sent-2", "everyone"),
			w.userRow("stuck", "role USER"),
			w.userRow("due-old", "user"),
			w.userRow("not-due", "everyone"),
			w.userRow("due-new", "role ADMIN"),
		}},
		{"no roles, an older range", []string{"user_id=alice", "from=" + ago(96*time.Hour), "to=" + ago(25*time.Minute)}, [][]any{
			w.userRow("old-alice", "user"),
			w.userRow("sent-1", "user"),
			w.userRow("sent-2", "everyone"),
		}},
		{"the user named beside roles", []string{"user_id=dave", "roles={USER}"}, [][]any{
			w.userRow("failed-a2", "user"),
			w.userRow("sent-2", "everyone"),
			w.userRow("stuck", "role USER"),
			w.userRow("not-due", "everyone"),
		}},
		{"to is exclusive", []string{"user_id=carol", "roles={OTHER}", "from=" + ago(time.Hour), "to=" + ago(5*time.Minute)}, [][]any{
			w.userRow("failed-a1", "user"),
			w.userRow("sent-2", "everyone"),
		}},
		{"a stranger gets what goes to everyone", []string{"user_id=nobody'; DROP TABLE notify.notifications; --"}, [][]any{
			w.userRow("sent-2", "everyone"),
			w.userRow("not-due", "everyone"),
		}},
	}
	for _, tc := range cases {
		checkRows(t, "notifications_for_user "+strings.Join(tc.vars, " "), run(t, w.db.URL, "notifications_for_user.sql", tc.vars...), tc.want)
	}
	out := runRefused(t, w.db.URL, "notifications_for_user.sql", "roles={ADMIN}")
	if !strings.Contains(out.stderr, "needs the user id") {
		t.Errorf("without user_id, stderr does not say what is missing: %q", out.stderr)
	}
}

func testThroughputPerMinute(t *testing.T) {
	w := seed(t)
	minute := func(ago int) time.Time { return w.base.Add(-time.Duration(ago) * time.Minute) }
	// The hour up to base: minutes ago -> created, published, failed, p50, p99.
	active := map[int][]string{
		50: {"1", "0", "0", "", ""},             // failed-a1
		45: {"1", "0", "0", "", ""},             // failed-a2
		40: {"0", "0", "1", "", ""},             // failed-a1 gave up
		30: {"2", "2", "0", "2000.0", "2980.0"}, // sent-1 and sent-2, published after 1s and 3s
		20: {"1", "0", "1", "", ""},             // stuck; failed-a2 gave up
		16: {"1", "0", "0", "", ""},             // failed-b
		15: {"0", "0", "1", "", ""},             // failed-b gave up
		10: {"1", "0", "0", "", ""},             // due-old
		5:  {"1", "1", "0", "500.0", "500.0"},   // sent-3, published after 500ms
		3:  {"1", "0", "0", "", ""},             // not-due
		2:  {"1", "0", "0", "", ""},             // due-new
		1:  {"1", "0", "0", "", ""},             // fresh
	}
	var want [][]any
	for ago := 59; ago >= 0; ago-- {
		cells := active[ago]
		if cells == nil {
			cells = []string{"0", "0", "0", "", ""}
		}
		row := []any{ts(minute(ago))}
		for _, c := range cells {
			row = append(row, c)
		}
		want = append(want, row)
	}
	checkRows(t, "throughput_per_minute until base", run(t, w.db.URL, "throughput_per_minute.sql", "until="+ts(w.base)), want)

	// A window ending mid-minute counts that minute up to its end only:
	// sent-2 was created 10s into it.
	checkRows(t, "throughput_per_minute 2 minutes until base-30m+5s",
		run(t, w.db.URL, "throughput_per_minute.sql", "minutes=2", "until="+ts(minute(30).Add(5*time.Second))), [][]any{
			{ts(minute(31)), "0", "0", "0", "", ""},
			{ts(minute(30)), "1", "1", "0", "1000.0", "1000.0"},
		})

	// By default the last hour up to now: everything but old-alice.
	out := run(t, w.db.URL, "throughput_per_minute.sql")
	if len(out.rows) != 60 {
		t.Fatalf("default window: %d rows, want 60", len(out.rows))
	}
	if last := out.rows[59][0]; last != ts(out.before.Truncate(time.Minute)) && last != ts(out.after.Truncate(time.Minute)) {
		t.Errorf("default window ends with minute %s, want the current one (%s)", last, ts(out.before.Truncate(time.Minute)))
	}
	sums := [3]int{}
	for _, r := range out.rows {
		for i := range sums {
			n, err := strconv.Atoi(r[i+1])
			if err != nil {
				t.Fatalf("default window: row %q: %v", r, err)
			}
			sums[i] += n
		}
	}
	if sums != [3]int{11, 3, 3} {
		t.Errorf("default window: created, published, failed add up to %v, want [11 3 3]", sums)
	}
}
