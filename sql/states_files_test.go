package sqlfiles_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

func testInboxStates(t *testing.T) {
	w := seedStates(t)
	// in_history is what the server's history shows by default.
	shown := func(user string) map[int64]bool {
		items, _, err := w.inbox.History(t.Context(), notify.Identity{UserID: user}, postgres.HistoryQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		m := map[int64]bool{}
		for _, it := range items {
			m[it.Seq] = true
		}
		return m
	}
	row := func(user, key string, snoozed bool, interaction, label string, read bool) []any {
		it := w.items[key]
		archivedAt, snoozedUntil, interactedAt, updatedAt := w.state(t, user, key)
		return []any{itoa(it.seq), ts(it.created), it.module, inboxMessage(it.message), tsp(archivedAt), tsp(snoozedUntil), pgBool(snoozed),
			interaction, label, tsp(interactedAt), pgBool(read), pgBool(shown(user)[it.seq]),
			pgBool(key == "bc-expired"), pgBool(key == "orders-3" || key == "bc-digest-1"), tsp(updatedAt)}
	}
	// The latest change first: alice archived bc-pay after clicking it.
	// Her snooze of bc-news ended a minute ago (the waker has not run):
	// it is in the history again.
	alice := [][]any{
		row("alice", "bc-pay", false, "pay", "Pay now", true),
		row("alice", "orders-4", false, "open", "Open orders", true),
		row("alice", "bc-news", false, "", "", false),
		row("alice", "bc-orders", true, "", "", false),
		row("alice", "to-alice-long", false, "", "", false),
	}
	if alice[2][11] != "t" || alice[1][11] != "t" || alice[0][11] != "f" {
		t.Fatalf("test bug: the server's history of alice is not as the seed says: %v", shown("alice"))
	}
	checkRows(t, "inbox_states alice", run(t, w.db.URL, "inbox_states.sql", "user_id=alice"), alice)
	checkRows(t, "inbox_states alice -v limit=2", run(t, w.db.URL, "inbox_states.sql", "user_id=alice", "limit=2"), alice[:2])
	checkRows(t, "inbox_states bob", run(t, w.db.URL, "inbox_states.sql", "user_id=bob"), [][]any{
		row("bob", "bc-pay", true, "", "", false),
		row("bob", "sent-2", false, "", "", false),
	})
	// frank unarchived bc-critical: nothing left to list of it.
	checkRows(t, "inbox_states frank", run(t, w.db.URL, "inbox_states.sql", "user_id=frank"), [][]any{
		row("frank", "bc-pay", false, "pay", "Pay now", true),
	})
	checkRows(t, "inbox_states carol", run(t, w.db.URL, "inbox_states.sql", "user_id=carol"), nil)
	out := runRefused(t, w.db.URL, "inbox_states.sql", "limit=3")
	if !strings.Contains(out.stderr, "needs the user id") {
		t.Errorf("without user_id, stderr does not say what is missing: %q", out.stderr)
	}
}

func testUnsnoozeUser(t *testing.T) {
	t.Run("one snooze: back in the history and the count, and the waker takes it", func(t *testing.T) {
		t.Parallel()
		w := seedStates(t)
		ctx := t.Context()
		alice := notify.Identity{UserID: "alice"}
		before, err := w.inbox.Unread(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		out := run(t, w.db.URL, "unsnooze_user.sql", "user_id=alice", "seq=12")
		checkRows(t, "unsnooze_user alice 12", out, [][]any{{"12", "message bc-orders", ts(w.snoozedUntil["alice 12"]), "f"}})
		checkTags(t, out, "BEGIN", "COMMIT")
		w.checkUnsnoozed(t, out, "alice", "bc-orders")
		if _, until, _, _ := w.state(t, "bob", "bc-pay"); until == nil || !until.Equal(w.snoozedUntil["bob 17"]) {
			t.Errorf("bob's snooze changed: %v", until)
		}
		after, err := w.inbox.Unread(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if after.Count != before.Count+1 {
			t.Errorf("alice's unread count went from %d to %d; want one more (bc-orders, back unread)", before.Count, after.Count)
		}
		items, _, err := w.inbox.History(ctx, alice, postgres.HistoryQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(items, func(it postgres.InboxItem) bool { return it.Seq == 12 && !it.Read }) {
			t.Errorf("bc-orders is not back, unread, in alice's history")
		}
		woken, err := w.inbox.WakeSnoozed(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(woken, postgres.Woken{UserID: "alice", Seq: 12}) || slices.Contains(woken, postgres.Woken{UserID: "bob", Seq: 17}) {
			t.Errorf("the waker ended %v; want alice's 12 among them, not bob's 17", woken)
		}
	})
	t.Run("every snooze of the user, expired ones too", func(t *testing.T) {
		t.Parallel()
		w := seedStates(t)
		later := w.now.Add(2 * time.Hour)
		w.do(t, "alice", func(ctx context.Context, _ *postgres.Inbox, id notify.Identity) error {
			if err := w.snooze(ctx, id, "bc-nomodule", later); err != nil {
				return err
			}
			return w.snooze(ctx, id, "bc-expired", later)
		})
		out := run(t, w.db.URL, "unsnooze_user.sql", "user_id=alice")
		// bc-news's snooze ran out before: left alone.
		checkRows(t, "unsnooze_user alice", out, [][]any{
			{"9", "message bc-nomodule", ts(later), "f"},
			{"12", "message bc-orders", ts(w.snoozedUntil["alice 12"]), "f"},
			{"16", "message bc-expired", ts(later), "t"},
		})
		w.checkUnsnoozed(t, out, "alice", "bc-nomodule", "bc-orders", "bc-expired")
		if _, until, _, _ := w.state(t, "alice", "bc-news"); until == nil || !until.Equal(w.snoozedUntil["alice 13"]) {
			t.Errorf("alice's snooze of bc-news, over already, changed: %v", until)
		}
	})
	t.Run("no snooze running", func(t *testing.T) {
		t.Parallel()
		w := seedStates(t)
		out := runWarn(t, w.db.URL, "unsnooze_user.sql", "user_id=carol")
		checkRows(t, "unsnooze_user carol", out, nil)
		if !strings.Contains(out.stderr, "no snooze running for user carol") {
			t.Errorf("no warning that nothing was unsnoozed; stderr: %q", out.stderr)
		}
		out = runWarn(t, w.db.URL, "unsnooze_user.sql", "user_id=alice", "seq=13")
		checkRows(t, "unsnooze_user alice 13 (over already)", out, nil)
		if _, until, _, _ := w.state(t, "alice", "bc-news"); until == nil || !until.Equal(w.snoozedUntil["alice 13"]) {
			t.Errorf("alice's snooze of bc-news, over already, changed: %v", until)
		}
		out = runRefused(t, w.db.URL, "unsnooze_user.sql", "seq=12")
		if !strings.Contains(out.stderr, "needs the user id") {
			t.Errorf("without user_id, stderr does not say what is missing: %q", out.stderr)
		}
	})
}

// checkUnsnoozed checks that user's snoozes of keys ended in the run.
func (w *statesWorld) checkUnsnoozed(t *testing.T, out output, user string, keys ...string) {
	t.Helper()
	for _, key := range keys {
		_, until, _, updated := w.state(t, user, key)
		if until == nil || !within(*until, out) || !within(*updated, out) {
			t.Errorf("%s's snooze of %s: snoozed_until %v, updated_at %v; want now() of the run (%s .. %s)", user, key, until, updated, out.before, out.after)
		}
	}
}

func testActionClicks(t *testing.T) {
	w := seedStates(t)
	clicked := func(user, key string) time.Time {
		_, _, at, _ := w.state(t, user, key)
		return *at
	}
	alicePay, aliceOpen, ginaLater, frankPay := clicked("alice", "bc-pay"), clicked("alice", "orders-4"), clicked("gina", "bc-pay"), clicked("frank", "bc-pay")
	// The last 7 days: frank's click was 8 days ago.
	checkRows(t, "action_clicks", run(t, w.db.URL, "action_clicks.sql"), [][]any{
		{"billing", "later", "Later", "1", "1", "1", ts(ginaLater), ts(ginaLater)},
		{"billing", "pay", "Pay now", "1", "1", "1", ts(alicePay), ts(alicePay)},
		{"orders", "open", "Open orders", "1", "1", "1", ts(aliceOpen), ts(aliceOpen)},
	})
	checkRows(t, "action_clicks -v since=9 days ago", run(t, w.db.URL, "action_clicks.sql", "since="+ts(w.now.Add(-9*24*time.Hour))), [][]any{
		{"billing", "pay", "Pay now", "2", "2", "1", ts(frankPay), ts(alicePay)},
		{"billing", "later", "Later", "1", "1", "1", ts(ginaLater), ts(ginaLater)},
		{"orders", "open", "Open orders", "1", "1", "1", ts(aliceOpen), ts(aliceOpen)},
	})
	checkRows(t, "action_clicks -v since=later", run(t, w.db.URL, "action_clicks.sql", "since="+ts(time.Now().Add(time.Minute))), nil)
}
