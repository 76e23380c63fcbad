package sqlfiles_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// longMessage is cut by user_inbox.sql: its whitespace runs become single
// spaces, then it is longer than 80 characters.
const longMessage = "Your order 1042 has shipped.\n\tTrack it at https://example.com/track/1042 - it should arrive on Tuesday, before noon."

// inboxWorld is the scenario (seq 1 to 4 published) plus nine more
// published notifications and the inbox state of seven users:
//
//	seq key             target           module   severity  created
//	1   old-alice       user alice       news     medium    base-3d
//	2   sent-1          user alice       orders   medium    base-30m
//	3   sent-2          everyone         news     medium    base-30m+10s
//	4   sent-3          role OTHER       news     medium    base-5m
//	5   bc-critical     everyone         news     critical  base-4m30s
//	6   to-bob          user bob         billing  high      base-4m
//	7   to-alice-admin  alice + ADMIN    billing  low       base-3m30s
//	8   to-admin        role ADMIN       orders   medium    base-3m
//	9   bc-nomodule     everyone         (none)   medium    base-2m30s
//	10  to-alice-long   user alice       orders   medium    base-2m    (longMessage)
//	11  to-carol        user carol       orders   critical  base-90s
//	12  bc-orders       everyone         orders   low       base-1m
//	13  bc-news         everyone         news     medium    base-30s
//
// Unpublished and so in nobody's inbox: due-old (alice), fresh (bob),
// failed-a1 (carol), failed-a2 (dave + ADMIN,USER), stuck (USER),
// failed-b, not-due (everyone), due-new (ADMIN).
//
//	user   cursor            marks                                          muted
//	alice  3 at base-20m     2 unread (base-15m), 7 read (base-1m),         {news,billing}
//	                         8 read (base-45s)
//	bob    -                 -                                              {orders}
//	carol  -                 5 unread, 11 unread (base-40s): above the      -
//	                         watermark, where the server never leaves them
//	dave   -                 -                                              -
//	erin   13 at base-10m    3 unread (base-5m), 4 unread (base-5m)         -
//	frank  -                 3 read, 8 read, 12 read (base-50s)             -
//	gina   -                 3 read, 9 read (base-40s)                      {news,orders}
type inboxWorld struct {
	*world
	cursorAt map[string]time.Time // user: read_cursors.updated_at
	markedAt map[string]time.Time // "user seq": read_marks.marked_at
}

func seedInbox(t *testing.T) *inboxWorld {
	t.Helper()
	w := &inboxWorld{world: seed(t)}
	b, m, s := w.base, time.Minute, time.Second
	more := map[string]*item{
		"bc-critical":    {module: "news", severity: "critical", created: b.Add(-4*m - 30*s), seq: 5},
		"to-bob":         {user: "bob", module: "billing", severity: "high", created: b.Add(-4 * m), seq: 6},
		"to-alice-admin": {user: "alice", roles: []string{"ADMIN"}, module: "billing", severity: "low", created: b.Add(-3*m - 30*s), seq: 7},
		"to-admin":       {roles: []string{"ADMIN"}, module: "orders", created: b.Add(-3 * m), seq: 8},
		"bc-nomodule":    {module: "", created: b.Add(-2*m - 30*s), seq: 9},
		"to-alice-long":  {user: "alice", module: "orders", created: b.Add(-2 * m), seq: 10},
		"to-carol":       {user: "carol", module: "orders", severity: "critical", created: b.Add(-90 * s), seq: 11},
		"bc-orders":      {module: "orders", severity: "low", created: b.Add(-1 * m), seq: 12},
		"bc-news":        {module: "news", created: b.Add(-30 * s), seq: 13},
	}
	w.cursorAt = map[string]time.Time{"alice": b.Add(-20 * m), "erin": b.Add(-10 * m)}
	w.markedAt = map[string]time.Time{
		"alice 2": b.Add(-15 * m), "alice 7": b.Add(-1 * m), "alice 8": b.Add(-45 * s),
		"erin 3": b.Add(-5 * m), "erin 4": b.Add(-5 * m),
		"frank 3": b.Add(-50 * s), "frank 8": b.Add(-50 * s), "frank 12": b.Add(-50 * s),
		"carol 5": b.Add(-40 * s), "carol 11": b.Add(-40 * s), "gina 3": b.Add(-40 * s), "gina 9": b.Add(-40 * s),
	}
	ctx := t.Context()
	err := pgx.BeginFunc(ctx, w.db.Pool, func(tx pgx.Tx) error {
		for key, it := range more {
			it.status, it.attempts, it.published = "sent", 1, it.created.Add(time.Second)
			if err := insertItem(ctx, tx, key, it); err != nil {
				return err
			}
			w.items[key] = it
		}
		more["to-alice-long"].message = longMessage
		_, err := tx.Exec(ctx, `UPDATE notify.notifications SET module = NULL WHERE id = $1;`, more["bc-nomodule"].nid)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE notify.notifications SET message = $2 WHERE id = $1`, more["to-alice-long"].nid, longMessage); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE notify.stream_head SET last_seq = 13, published_at = $1`, more["bc-news"].published); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notify.read_cursors (user_id, read_up_to, updated_at)
			VALUES ('alice', 3, $1), ('erin', 13, $2)`, w.cursorAt["alice"], w.cursorAt["erin"]); err != nil {
			return err
		}
		for _, mk := range []struct {
			user string
			seq  int64
			read bool
		}{{"alice", 2, false}, {"alice", 7, true}, {"alice", 8, true}, {"erin", 3, false}, {"erin", 4, false},
			{"frank", 3, true}, {"frank", 8, true}, {"frank", 12, true}, {"carol", 5, false}, {"carol", 11, false}, {"gina", 3, true}, {"gina", 9, true}} {
			if _, err := tx.Exec(ctx, `INSERT INTO notify.read_marks (user_id, seq, is_read, marked_at) VALUES ($1, $2, $3, $4)`,
				mk.user, mk.seq, mk.read, w.markedAt[mk.user+" "+itoa(mk.seq)]); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO notify.preferences (user_id, muted_modules) VALUES
			('alice', '{news,billing}'), ('bob', '{orders}'), ('gina', '{news,orders}')`)
		return err
	})
	if err != nil {
		t.Fatalf("seed the inbox: %v", err)
	}
	return w
}

// inboxRow is the row user_inbox.sql lists for item key; readAt is zero
// for an unread one. The user has no seen mark and no inbox states, and
// the notification neither expires nor has a collapse key.
func (w *inboxWorld) inboxRow(key string, read bool, readAt time.Time, muted bool) []any {
	it := w.items[key]
	return []any{itoa(it.seq), ts(it.created), it.severity, it.module, inboxMessage(it.message), pgBool(read), ts(readAt),
		pgBool(read), pgBool(muted), "", "", "f", "f", "", ""}
}

// inboxSummary is user_inbox.sql's summary row for a user without a seen
// mark and inbox states: everything visible is in the history, and unseen
// is unread.
func inboxSummary(user, readUpTo, cursorAt, marked, unmarked, muted, visible, unread, unreadMuted string) []any {
	return []any{user, readUpTo, cursorAt, "0", marked, unmarked, muted, visible, visible, unread, unread, unreadMuted, "0", "0", "0", "0"}
}

// inboxMessage is message as user_inbox.sql prints it: on one line, cut
// to 80 characters.
func inboxMessage(message string) string {
	one := strings.Join(strings.Fields(message), " ")
	if len(one) > 80 {
		return one[:77] + "..."
	}
	return one
}

func pgBool(b bool) string {
	if b {
		return "t"
	}
	return "f"
}

func testUserInbox(t *testing.T) {
	w := seedInbox(t)
	cut := inboxMessage(longMessage)
	if len(cut) != 80 || !strings.HasSuffix(cut, "...") || strings.ContainsAny(cut, "\n\t") {
		t.Fatalf("test bug: longMessage cuts to %q", cut)
	}
	alice, marked := w.cursorAt["alice"], w.markedAt
	// alice's rows with roles '{}': the seq 7 mark says read, the seq 2 mark
	// unread; 1 and 3 are under her watermark; news and billing are muted
	// but for the critical seq 5; seq 9 has no module to mute.
	aliceRows := map[string][]any{
		"bc-news":        w.inboxRow("bc-news", false, time.Time{}, true),
		"bc-orders":      w.inboxRow("bc-orders", false, time.Time{}, false),
		"to-alice-long":  w.inboxRow("to-alice-long", false, time.Time{}, false),
		"bc-nomodule":    w.inboxRow("bc-nomodule", false, time.Time{}, false),
		"to-admin":       w.inboxRow("to-admin", true, marked["alice 8"], false),
		"to-alice-admin": w.inboxRow("to-alice-admin", true, marked["alice 7"], true),
		"bc-critical":    w.inboxRow("bc-critical", false, time.Time{}, false),
		"sent-3":         w.inboxRow("sent-3", false, time.Time{}, true),
		"sent-2":         w.inboxRow("sent-2", true, alice, true),
		"sent-1":         w.inboxRow("sent-1", false, time.Time{}, false),
		"old-alice":      w.inboxRow("old-alice", true, alice, true),
	}
	rows := func(summary []any, keys ...string) [][]any {
		out := [][]any{summary}
		for _, k := range keys {
			out = append(out, aliceRows[k])
		}
		return out
	}
	aliceSummary := func(visible, unread, muted string) []any {
		return inboxSummary("alice", "3", ts(alice), "2", "1", "{news,billing}", visible, unread, muted)
	}
	cases := []struct {
		name string
		vars []string
		want [][]any
	}{
		{"no roles", []string{"user_id=alice"}, rows(aliceSummary("9", "5", "1"),
			"bc-news", "bc-orders", "to-alice-long", "bc-nomodule", "to-alice-admin", "bc-critical", "sent-2", "sent-1", "old-alice")},
		// seq 8 (ADMIN) is read by her mark, seq 4 (OTHER) is above the
		// watermark, from a muted module.
		{"with roles", []string{"user_id=alice", "roles={ADMIN,OTHER}"}, rows(aliceSummary("11", "5", "2"),
			"bc-news", "bc-orders", "to-alice-long", "bc-nomodule", "to-admin", "to-alice-admin", "bc-critical", "sent-3", "sent-2", "sent-1", "old-alice")},
		{"limit", []string{"user_id=alice", "limit=3"}, rows(aliceSummary("9", "5", "1"),
			"bc-news", "bc-orders", "to-alice-long")},
		{"unread only, muted ones too", []string{"user_id=alice", "roles={ADMIN,OTHER}", "unread_only=true"}, rows(aliceSummary("11", "5", "2"),
			"bc-news", "bc-orders", "to-alice-long", "bc-nomodule", "bc-critical", "sent-3", "sent-1")},
		{"unread only, limit", []string{"user_id=alice", "unread_only=on", "limit=2"}, rows(aliceSummary("9", "5", "1"),
			"bc-news", "bc-orders")},
		{"unread_only=false", []string{"user_id=alice", "unread_only=false", "limit=1"}, rows(aliceSummary("9", "5", "1"),
			"bc-news")},
	}
	for _, tc := range cases {
		checkRows(t, "user_inbox "+strings.Join(tc.vars, " "), run(t, w.db.URL, "user_inbox.sql", tc.vars...), tc.want)
	}

	// erin read everything up to 13 and marked 3 and 4 unread again; 4 goes
	// to OTHER, which she holds here.
	erin := w.cursorAt["erin"]
	checkRows(t, "user_inbox erin", run(t, w.db.URL, "user_inbox.sql", "user_id=erin", "roles={OTHER}", "limit=4"), [][]any{
		inboxSummary("erin", "13", ts(erin), "0", "2", "{}", "6", "2", "0"),
		w.inboxRow("bc-news", true, erin, false),
		w.inboxRow("bc-orders", true, erin, false),
		w.inboxRow("bc-nomodule", true, erin, false),
		w.inboxRow("bc-critical", true, erin, false),
	})
	checkRows(t, "user_inbox erin unread", run(t, w.db.URL, "user_inbox.sql", "user_id=erin", "roles={OTHER}", "unread_only=true"), [][]any{
		inboxSummary("erin", "13", ts(erin), "0", "2", "{}", "6", "2", "0"),
		w.inboxRow("sent-3", false, time.Time{}, false),
		w.inboxRow("sent-2", false, time.Time{}, false),
	})

	// bob has no cursor: everything is unread; he muted orders. fresh
	// names him but is not published.
	checkRows(t, "user_inbox bob", run(t, w.db.URL, "user_inbox.sql", "user_id=bob"), [][]any{
		inboxSummary("bob", "0", "", "0", "0", "{orders}", "6", "5", "1"),
		w.inboxRow("bc-news", false, time.Time{}, false),
		w.inboxRow("bc-orders", false, time.Time{}, true),
		w.inboxRow("bc-nomodule", false, time.Time{}, false),
		w.inboxRow("to-bob", false, time.Time{}, false),
		w.inboxRow("bc-critical", false, time.Time{}, false),
		w.inboxRow("sent-2", false, time.Time{}, false),
	})

	// A user the database has never heard of gets what goes to everyone.
	stranger := "nobody'; DROP TABLE notify.notifications; --"
	checkRows(t, "user_inbox stranger", run(t, w.db.URL, "user_inbox.sql", "user_id="+stranger, "unread_only=true", "limit=0"), [][]any{
		inboxSummary(stranger, "0", "", "0", "0", "{}", "5", "5", "0"),
	})

	out := runRefused(t, w.db.URL, "user_inbox.sql", "roles={ADMIN}")
	if !strings.Contains(out.stderr, "needs the user id") {
		t.Errorf("without user_id, stderr does not say what is missing: %q", out.stderr)
	}
	out = runRefused(t, w.db.URL, "user_inbox.sql", "user_id=alice", "archived=yes")
	if !strings.Contains(out.stderr, "false, true or only") {
		t.Errorf("with archived=yes, stderr does not say what archived may be: %q", out.stderr)
	}

	t.Run("inbox states, against the server's history and counts", func(t *testing.T) {
		t.Parallel()
		testUserInboxStates(t)
	})
}

// unreadRow is the row unread_by_user.sql prints for user: the counts, the
// oldest unread notification (its key in w; "" for none) and the watermark.
func (w *inboxWorld) unreadRow(user, unread, muted, oldestKey, readUpTo string) []any {
	if oldestKey == "" {
		return []any{user, unread, muted, "", "", readUpTo}
	}
	created := w.items[oldestKey].created
	return []any{user, unread, muted, ts(created), age{created}, readUpTo}
}

func testUnreadByUser(t *testing.T) {
	w := seedInbox(t)
	row := w.unreadRow
	// Notifications to everyone: 3 (news), 5 (news, critical), 9 (no
	// module), 12 (orders), 13 (news). Roles are not counted: alice's 4 and
	// 8, erin's unread mark on 4, frank's read mark on 8 change nothing.
	all := [][]any{
		// to-carol and the five to everyone; her unread marks on 5 and 11
		// say what her (missing) watermark says, and count once.
		row("carol", "6", "0", "sent-2", ""),
		// 2 (marked unread), 5, 9, 10, 12; 13 muted; 7 marked read, 1 and 3 under the watermark.
		row("alice", "5", "1", "sent-1", "3"),
		// to-bob and everyone's but 12, which he muted.
		row("bob", "5", "1", "sent-2", ""),
		// failed-a2 names him but is not published.
		row("dave", "5", "0", "sent-2", ""),
		// Read 3 (the oldest), 12 above a watermark of 0: 5, 9, 13 left.
		row("frank", "3", "0", "bc-critical", ""),
		// Everything read but 3, marked unread.
		row("erin", "1", "0", "sent-2", "13"),
		// Read 3 (muted anyway) and 9: the critical 5 counts; 12 and 13 are muted.
		row("gina", "1", "2", "bc-critical", ""),
	}
	checkRows(t, "unread_by_user", run(t, w.db.URL, "unread_by_user.sql"), all)
	checkRows(t, "unread_by_user -v limit=3", run(t, w.db.URL, "unread_by_user.sql", "limit=3"), all[:3])

	t.Run("random inboxes, against a plain listing and the server", func(t *testing.T) {
		t.Parallel()
		testUnreadByUserRandom(t)
	})
	t.Run("inbox states, against the server", func(t *testing.T) {
		t.Parallel()
		testUnreadByUserStates(t)
	})

	t.Run("all read", func(t *testing.T) {
		t.Parallel()
		w := seedInbox(t)
		// This world is seeded at its own time: its rows, not the outer
		// world's (a minute boundary between the two seeds moved them all).
		row := w.unreadRow
		if _, err := w.db.Pool.Exec(t.Context(), `INSERT INTO notify.read_cursors (user_id, read_up_to)
			SELECT u, 13 FROM unnest('{alice,bob,carol,dave,erin,frank,gina}'::text[]) u
			ON CONFLICT (user_id) DO UPDATE SET read_up_to = 13;
			DELETE FROM notify.read_marks WHERE user_id <> 'erin'`); err != nil {
			t.Fatal(err)
		}
		checkRows(t, "unread_by_user, all read", run(t, w.db.URL, "unread_by_user.sql"), [][]any{
			row("erin", "1", "0", "sent-2", "13"),
			row("alice", "0", "0", "", "13"),
			row("bob", "0", "0", "", "13"),
			row("carol", "0", "0", "", "13"),
			row("dave", "0", "0", "", "13"),
			row("frank", "0", "0", "", "13"),
			row("gina", "0", "0", "", "13"),
		})
	})
}
