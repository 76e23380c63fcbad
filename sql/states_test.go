package sqlfiles_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// testUserInboxStates checks user_inbox.sql against the server's store on
// the states world: for every user, roles, archived= and unread_only=, the
// list is the store's history page (the same notifications and their read,
// seen, archive and click state) and the summary's unread and unseen are
// the store's counts.
func testUserInboxStates(t *testing.T) {
	w := seedStates(t)
	ctx := t.Context()
	ids := []notify.Identity{{UserID: "alice"}, {UserID: "alice", Roles: []string{"ADMIN", "OTHER"}},
		{UserID: "bob"}, {UserID: "carol"}, {UserID: "erin", Roles: []string{"OTHER"}}, {UserID: "frank"}, {UserID: "gina"}, {UserID: "stranger"}}
	archived := map[string]string{"false": postgres.ArchivedExclude, "true": postgres.ArchivedInclude, "only": postgres.ArchivedOnly}
	for _, id := range ids {
		u, err := w.inbox.Unread(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{"false", "true", "only"} {
			for _, unreadOnly := range []bool{false, true} {
				items, _, err := w.inbox.History(ctx, id, postgres.HistoryQuery{Limit: 100, Archived: archived[a], UnreadOnly: unreadOnly})
				if err != nil {
					t.Fatal(err)
				}
				vars := []string{"user_id=" + id.UserID, "roles={" + strings.Join(id.Roles, ",") + "}", "archived=" + a,
					"unread_only=" + pgBool(unreadOnly), "limit=100"}
				what := "user_inbox " + strings.Join(vars, " ")
				out := run(t, w.db.URL, "user_inbox.sql", vars...)
				if len(out.rows) == 0 || len(out.rows[0]) != 16 {
					t.Fatalf("%s: no summary row:\n%s", what, showRows(out.rows))
				}
				if got := out.rows[0][9:11]; !slices.Equal(got, []string{itoa(u.Count), itoa(u.Unseen)}) {
					t.Errorf("%s: unread, unseen %q; the server counts %d, %d", what, got, u.Count, u.Unseen)
				}
				want := [][]any{anyOf(out.rows[0])}
				for _, it := range items {
					want = append(want, historyRow(it))
				}
				checkRows(t, what, projectHistory(out), want)
			}
		}
	}

	// What alice's history hides, and why, with hidden=true.
	aliceState := func(key string) (string, string, string) {
		archivedAt, snoozed, interacted, _ := w.state(t, "alice", key)
		return tsp(archivedAt), tsp(snoozed), tsp(interacted)
	}
	payArchived, _, payClicked := aliceState("bc-pay")
	_, _, openClicked := aliceState("orders-4")
	row := func(key string, read bool, readAt string, seen, muted bool, archivedAt, snoozedUntil string, expired, superseded bool, interaction, at string) []any {
		it := w.items[key]
		return []any{itoa(it.seq), ts(it.created), it.severity, it.module, it.message, pgBool(read), readAt, pgBool(seen), pgBool(muted),
			archivedAt, snoozedUntil, pgBool(expired), pgBool(superseded), interaction, at}
	}
	out := run(t, w.db.URL, "user_inbox.sql", "user_id=alice", "archived=true", "hidden=true", "limit=8")
	checkRows(t, "user_inbox alice hidden=true", out, [][]any{
		// 15 visible; 9 in the history (not 10 and 17, archived; 12,
		// snoozed; 16, expired; 14 and 18, superseded); unread 19, 9, 5
		// and 2 (13 is muted), unseen 19 (seen up to 9). Four marks read:
		// 7, 8 and the two clicks.
		{"alice", "3", ts(w.cursorAt["alice"]), "9", "4", "1", "{news,billing}", "15", "9", "4", "1", "1", "2", "1", "1", "2"},
		row("bc-digest-2", false, "", false, false, "", "", false, false, "", ""),
		row("bc-digest-1", false, "", false, false, "", "", false, true, "", ""),
		row("bc-pay", true, w.markedAtNow(t, "alice", "bc-pay"), true, true, payArchived, "", false, false, "pay", payClicked),
		row("bc-expired", false, "", false, false, "", "", true, false, "", ""),
		row("orders-4", true, w.markedAtNow(t, "alice", "orders-4"), true, false, "", "", false, false, "open", openClicked),
		row("orders-3", false, "", false, false, "", "", false, true, "", ""),
		// Snoozed a minute ago: back, though the waker has not run.
		row("bc-news", false, "", false, true, "", ts(w.snoozedUntil["alice 13"]), false, false, "", ""),
		row("bc-orders", false, "", false, false, "", ts(w.snoozedUntil["alice 12"]), false, false, "", ""),
	})
}

// historyRow is the part of a user_inbox.sql row that a history item
// says: seq, read, seen, archived_at, interaction, interacted_at.
func historyRow(it postgres.InboxItem) []any {
	return []any{itoa(it.Seq), pgBool(it.Read), pgBool(it.Seen), ts(it.ArchivedAt), it.Interaction, ts(it.InteractedAt)}
}

// projectHistory keeps the summary row of a user_inbox.sql output whole and
// the historyRow columns of its list rows.
func projectHistory(out output) output {
	p := out
	p.rows = [][]string{out.rows[0]}
	for _, r := range out.rows[1:] {
		if len(r) != 15 {
			p.rows = append(p.rows, r)
			continue
		}
		p.rows = append(p.rows, []string{r[0], r[5], r[7], r[9], r[13], r[14]})
	}
	return p
}

func anyOf(cells []string) []any {
	out := make([]any, len(cells))
	for i, c := range cells {
		out[i] = c
	}
	return out
}

// tsp is ts of a nullable timestamp.
func tsp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ts(*t)
}

// markedAtNow reads when user's read mark on item key was written.
func (w *statesWorld) markedAtNow(t *testing.T, user, key string) string {
	t.Helper()
	var at time.Time
	if err := w.db.Pool.QueryRow(t.Context(), `SELECT marked_at FROM notify.read_marks WHERE user_id = $1 AND seq = $2 AND is_read`,
		user, w.items[key].seq).Scan(&at); err != nil {
		t.Fatalf("read mark of %s on %s: %v", user, key, err)
	}
	return ts(at)
}

// testUnreadByUserStates checks unread_by_user.sql on the states world
// against the server's unread count of every user (without roles, as the
// file counts), and pins the one figure it documents may differ.
func testUnreadByUserStates(t *testing.T) {
	w := seedStates(t)
	out := run(t, w.db.URL, "unread_by_user.sql", "limit=100")
	if len(out.rows) != 7 {
		t.Fatalf("unread_by_user: %d users, want 7:\n%s", len(out.rows), showRows(out.rows))
	}
	for _, r := range out.rows {
		u, err := w.inbox.Unread(t.Context(), notify.Identity{UserID: r[0]})
		if err != nil {
			t.Fatal(err)
		}
		if r[1] != itoa(u.Count) {
			t.Errorf("unread_by_user: %s has %s unread; the server counts %d\n%s", r[0], r[1], u.Count, showRows(out.rows))
		}
		if r[0] != "bob" {
			continue
		}
		// bob archived sent-2, his oldest unread broadcast, above his
		// watermark (none) and last read broadcast (none): the window still
		// reports it as the oldest (the server's oldest is bc-critical).
		// Unread: to-bob, 5, 9, 13; muted: 12 and 19 (orders). Snoozing
		// gave him a cursor at 0.
		sent2 := w.items["sent-2"].created
		checkRows(t, "unread_by_user bob", output{rows: [][]string{r}, before: out.before, after: out.after}, [][]any{
			{"bob", "4", "2", ts(sent2), age{sent2}, "0"},
		})
	}
}
