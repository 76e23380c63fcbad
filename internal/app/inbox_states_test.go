package app_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/wire"
)

// The inbox states of issue 17: seen, archive, snooze, replace by key,
// expiry and actions, each through the HTTP API of a real server and, for
// the changes, on the user's streams of another node.

// inboxItem is a history item with the state fields of issue 17.
type inboxItem struct {
	ID           string          `json:"id"`
	Seq          int64           `json:"seq"`
	Message      string          `json:"message"`
	Read         bool            `json:"read"`
	Seen         bool            `json:"seen"`
	Archived     bool            `json:"archived"`
	ArchivedAt   *time.Time      `json:"archivedAt"`
	Interaction  *string         `json:"interaction"`
	InteractedAt *time.Time      `json:"interactedAt"`
	CollapseKey  string          `json:"collapseKey"`
	ExpiresAt    *time.Time      `json:"expiresAt"`
	Actions      json.RawMessage `json:"actions"`
}

type counts struct {
	Count         int  `json:"count"`
	HasMore       bool `json:"hasMore"`
	Unseen        int  `json:"unseen"`
	UnseenHasMore bool `json:"unseenHasMore"`
}

// statusData is the data of a status message about an inbox change.
type statusData struct {
	UnreadCount  *int               `json:"unreadCount"`
	UnseenCount  *int               `json:"unseenCount"`
	Notification *wire.Notification `json:"notification"`
	Change       struct {
		Action         string `json:"action"`
		NotificationID string `json:"notificationId"`
		Seq            int64  `json:"seq"`
	} `json:"change"`
}

// inboxUser is one user's view of a server: history, counts and actions.
type inboxUser struct {
	t     *testing.T
	url   string
	token string
}

func (u inboxUser) history(query string) []inboxItem {
	u.t.Helper()
	var page struct {
		Notifications []inboxItem `json:"notifications"`
	}
	if code := api(u.t, "GET", u.url+"/api/notifications"+query, u.token, "", &page); code != 200 {
		u.t.Fatalf("history%s: %d", query, code)
	}
	return page.Notifications
}

func (u inboxUser) counts() counts {
	u.t.Helper()
	var c counts
	if code := api(u.t, "GET", u.url+"/api/notifications/unread-count", u.token, "", &c); code != 200 {
		u.t.Fatalf("unread-count: %d", code)
	}
	return c
}

// post calls POST /api/notifications/<path> and checks the status.
func (u inboxUser) post(path, body string, want int) {
	u.t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if code := api(u.t, "POST", u.url+"/api/notifications/"+path, u.token, body, &e); code != want {
		u.t.Fatalf("POST %s %s: %d %q, want %d", path, body, code, e.Error, want)
	} else if want >= 400 && e.Error == "" {
		u.t.Fatalf("POST %s %s: %d without a JSON error", path, body, code)
	}
}

func messages(items []inboxItem) string {
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(it.Message)
	}
	return b.String()
}

// nextChange waits for the next status message carrying a change.
func nextChange(t *testing.T, r *apptest.Reader, action string) statusData {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, ok := r.NextOfType("status", time.Until(deadline))
		if !ok {
			break
		}
		var d statusData
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.Change.Action == action {
			return d
		}
	}
	t.Fatalf("no status message with change %q", action)
	return statusData{}
}

// TestInboxSeenArchiveAndSync: seen resets the unseen count but not read;
// archived notifications leave history and counts and come back when
// unarchived; each change reaches the user's stream on another node with
// both counts; another user's notification is a 404.
func TestInboxSeenArchiveAndSync(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	one := env.Start(env.Config())
	two := env.Start(env.Config())
	ann := inboxUser{t: t, url: one.URL(), token: env.Token("ann", "SALES")}
	other := apptest.Open(t, two.URL(), ann.token, "")
	if _, ok := other.NextOfType("connected", 10*time.Second); !ok {
		t.Fatal("no connected message")
	}
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_user_id, target_roles)
		VALUES ('a', 'ann', NULL), ('b', NULL, '{SALES}'), ('c', NULL, NULL), ('d', 'bob', NULL)`); err != nil {
		t.Fatal(err)
	}
	got := other.Notifications(3, 10*time.Second)
	newest := got[2].Notification().Seq
	// Two nodes' workers may publish one statement's rows in any order:
	// the expected histories follow the seqs the rows got.
	seqOf := map[string]int64{}
	for _, m := range got {
		seqOf[m.Notification().Message] = m.Notification().Seq
	}
	newestFirst := func(messages ...string) string {
		slices.SortFunc(messages, func(a, b string) int { return cmp.Compare(seqOf[b], seqOf[a]) })
		return strings.Join(messages, ",")
	}
	if c := ann.counts(); c.Count != 3 || c.Unseen != 3 {
		t.Fatalf("before seen: %+v, want 3 unread and 3 unseen", c)
	}

	// Seen up to the second one: unseen 1, unread still 3, items say which.
	ann.post("seen", fmt.Sprintf(`{"upTo":%d}`, got[1].Notification().Seq), 204)
	if d := nextChange(t, other, "seen"); *d.UnseenCount != 1 || *d.UnreadCount != 3 {
		t.Errorf("seen status: unseen %d unread %d, want 1 and 3", *d.UnseenCount, *d.UnreadCount)
	}
	if c := ann.counts(); c.Count != 3 || c.Unseen != 1 {
		t.Errorf("after seen: %+v, want 3 unread and 1 unseen", c)
	}
	items := ann.history("")
	if messages(items) != newestFirst("a", "b", "c") || items[0].Seen || !items[1].Seen || !items[2].Seen || items[2].Read {
		t.Errorf("history after seen: %+v", items)
	}
	// The mark never moves back, and is capped at the stream's head.
	ann.post("seen", `{"upTo":1}`, 204)
	ann.post("seen", `{"upTo":999999}`, 204)
	if c := ann.counts(); c.Unseen != 0 {
		t.Errorf("after seen up to everything: unseen %d", c.Unseen)
	}
	env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_user_id) VALUES ('e', 'ann')`)
	seqOf["e"] = other.Notifications(1, 10*time.Second)[0].Notification().Seq
	if c := ann.counts(); c.Unseen != 1 || c.Count != 4 {
		t.Errorf("a notification after the capped mark: %+v, want unseen 1 of 4 unread", c)
	}
	for _, bad := range []string{`{}`, `{"upTo":-1}`, `{"upTo":"x"}`, `nope`} {
		ann.post("seen", bad, 400)
	}

	// Archive the broadcast: out of history and counts, in ?archived=true
	// and =only, back when unarchived.
	c := items[slices.IndexFunc(items, func(it inboxItem) bool { return it.Message == "c" })]
	ann.post(c.ID+"/archive", "", 204)
	ann.post(c.ID+"/archive", "", 204) // idempotent
	if d := nextChange(t, other, "archive"); d.Change.NotificationID != c.ID || *d.UnreadCount != 3 {
		t.Errorf("archive status: %+v unread %d, want %s and 3", d.Change, *d.UnreadCount, c.ID)
	}
	if m := messages(ann.history("")); m != newestFirst("a", "b", "e") {
		t.Errorf("history after archive: %s", m)
	}
	all := ann.history("?archived=true")
	for _, it := range all {
		if it.Archived != (it.Message == "c") || (it.ArchivedAt != nil) != it.Archived {
			t.Errorf("history ?archived=true: %s archived %v at %v", it.Message, it.Archived, it.ArchivedAt)
		}
	}
	if m := messages(all); m != newestFirst("a", "b", "c", "e") {
		t.Errorf("history ?archived=true: %s", m)
	}
	if m := messages(ann.history("?archived=only")); m != "c" {
		t.Errorf("history ?archived=only: %s", m)
	}
	if c := ann.counts(); c.Count != 3 {
		t.Errorf("unread after archive: %d, want 3", c.Count)
	}
	// Another user's view is untouched.
	cy := inboxUser{t: t, url: one.URL(), token: env.Token("cy")}
	if m := messages(cy.history("")); m != "c" {
		t.Errorf("cy's history: %s", m)
	}
	ann.post(c.ID+"/unarchive", "", 204)
	nextChange(t, other, "unarchive")
	if m := messages(ann.history("")); m != newestFirst("a", "b", "c", "e") {
		t.Errorf("history after unarchive: %s", m)
	}

	// bob's notification and unknown ids are 404 for ann, for every action.
	var bobs string
	env.DB.Pool.QueryRow(context.Background(), `SELECT id FROM notify.notifications WHERE message = 'd'`).Scan(&bobs)
	for _, path := range []string{bobs + "/archive", bobs + "/unarchive", "not-a-uuid/archive", "00000000-0000-0000-0000-000000000000/archive"} {
		ann.post(path, "", 404)
	}
	ann.post(bobs+"/snooze", fmt.Sprintf(`{"until":%q}`, time.Now().Add(time.Hour).Format(time.RFC3339)), 404)
	if newest == 0 {
		t.Fatal("no seq")
	}
}

// TestInboxSnooze: a snoozed notification leaves history and counts, comes
// back unread when the moment passes, and is pushed to the user's streams
// on every node as a status message carrying it.
func TestInboxSnooze(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	one := env.Start(env.Config())
	two := env.Start(env.Config())
	liz := inboxUser{t: t, url: one.URL(), token: env.Token("liz", "OPS")}
	stream := apptest.Open(t, two.URL(), liz.token, "")
	// One after the other: two rows of one INSERT may be claimed by the two
	// nodes' workers and published in either order, and the test needs
	// "later" to be the later seq.
	var later wire.Notification
	for _, msg := range []string{"deploy", "later"} {
		if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_roles) VALUES ($1, '{OPS}')`, msg); err != nil {
			t.Fatal(err)
		}
		later = stream.Notifications(1, 10*time.Second)[0].Notification()
		if later.Message != msg {
			t.Fatalf("the stream got %q, want %q", later.Message, msg)
		}
	}
	liz.post(later.ID+"/read", "", 204)
	for _, bad := range []string{`{}`, `{"until":"tomorrow"}`, `{"until":"2001-01-01T00:00:00Z"}`,
		fmt.Sprintf(`{"until":%q}`, time.Now().Add(400*24*time.Hour).Format(time.RFC3339))} {
		liz.post(later.ID+"/snooze", bad, 400)
	}
	until := time.Now().Add(3 * time.Second)
	liz.post(later.ID+"/snooze", fmt.Sprintf(`{"until":%q}`, until.Format(time.RFC3339Nano)), 204)
	if d := nextChange(t, stream, "snooze"); d.Change.NotificationID != later.ID || *d.UnreadCount != 1 {
		t.Errorf("snooze status: %+v unread %d, want 1 (the snoozed one does not count)", d.Change, *d.UnreadCount)
	}
	if m := messages(liz.history("")); m != "deploy" {
		t.Errorf("history while snoozed: %s", m)
	}
	if m := messages(liz.history("?archived=true")); m != "deploy" {
		t.Errorf("history ?archived=true while snoozed: %s", m)
	}
	if c := liz.counts(); c.Count != 1 {
		t.Errorf("unread while snoozed: %d", c.Count)
	}
	d := nextChange(t, stream, "unsnooze")
	if time.Now().Before(until) {
		t.Errorf("unsnoozed before the moment")
	}
	if d.Notification == nil || d.Notification.ID != later.ID || d.Notification.Message != "later" || d.Change.NotificationID != later.ID {
		t.Fatalf("unsnooze status without the notification: %+v", d)
	}
	if *d.UnreadCount != 2 {
		t.Errorf("unsnooze status unread %d, want 2 (it is back unread)", *d.UnreadCount)
	}
	items := liz.history("")
	if messages(items) != "later,deploy" || items[0].Read {
		t.Errorf("history after the snooze: %+v, want later back and unread", items)
	}
	// One node ended the snooze, once.
	var left int
	env.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM notify.inbox_states WHERE snoozed_until IS NOT NULL`).Scan(&left)
	if left != 0 {
		t.Errorf("%d snoozes left after the moment", left)
	}
	if m, ok := stream.NextOfType("status", 2*time.Second); ok {
		t.Errorf("a second status after the unsnooze: %s", m.Data)
	}
}

// TestInboxCollapseKey: a newer notification with the same collapse key
// and targets supersedes the older ones in history and counts; the stream
// delivers each; other targets with the same key are their own group.
func TestInboxCollapseKey(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	mx := inboxUser{t: t, url: srv.URL(), token: env.Token("max", "SHOP")}
	stream := apptest.Open(t, srv.URL(), mx.token, "")
	for i := 1; i <= 3; i++ {
		if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_user_id, collapse_key)
			VALUES ($1, 'max', 'orders'), ($2, 'eve', 'orders')`, fmt.Sprintf("%d new orders", i), fmt.Sprintf("eve %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(body string) {
		t.Helper()
		if code := api(t, "POST", srv.URL()+"/api/notifications", env.Token("svc", "ADMIN"), body, nil); code != 201 {
			t.Fatalf("publish %s: %d", body, code)
		}
	}
	publish(`{"message":"shop 1","targetRoles":["SHOP"],"collapseKey":"orders"}`)
	publish(`{"message":"shop 2","targetRoles":["SHOP"],"collapseKey":"orders"}`)
	got := stream.Notifications(5, 10*time.Second)
	if got[4].Notification().CollapseKey != "orders" {
		t.Errorf("the stream's data has no collapseKey: %+v", got[4].Notification())
	}
	items := mx.history("")
	if messages(items) != "shop 2,3 new orders" || items[1].CollapseKey != "orders" {
		t.Errorf("history: %s, want the newest of each group", messages(items))
	}
	if c := mx.counts(); c.Count != 2 || c.Unseen != 2 {
		t.Errorf("counts %+v, want 2 and 2", c)
	}
	eve := inboxUser{t: t, url: srv.URL(), token: env.Token("eve")}
	if m := messages(eve.history("")); m != "eve 3" {
		t.Errorf("eve's history: %s", m)
	}
	// A bad key from SQL is refused; from HTTP too.
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, collapse_key) VALUES ('x', '')`); err == nil {
		t.Error("an empty collapse_key was accepted")
	}
	if code := api(t, "POST", srv.URL()+"/api/notifications", env.Token("svc", "ADMIN"),
		`{"message":"x","collapseKey":"`+strings.Repeat("k", 201)+`"}`, nil); code != 400 {
		t.Errorf("a 201-byte collapseKey: %d", code)
	}
}

// TestInboxExpiry: an expired notification is not delivered, replayed,
// listed or counted; one expiring later is, until then.
func TestInboxExpiry(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	kim := inboxUser{t: t, url: srv.URL(), token: env.Token("kim")}
	stream := apptest.Open(t, srv.URL(), kim.token, "")
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_user_id, expires_at)
		VALUES ('stale', 'kim', now() - interval '1 second'), ('soon', 'kim', now() + interval '5 seconds'), ('fresh', 'kim', NULL)`); err != nil {
		t.Fatal(err)
	}
	got := stream.Notifications(2, 10*time.Second)
	if got[0].Notification().Message != "soon" || got[1].Notification().Message != "fresh" {
		t.Fatalf("live: %q %q, want soon and fresh", got[0].Notification().Message, got[1].Notification().Message)
	}
	if got[0].Notification().ExpiresAt == nil {
		t.Error("the stream's data has no expiresAt")
	}
	if m := messages(kim.history("")); m != "fresh,soon" {
		t.Errorf("history: %s", m)
	}
	if c := kim.counts(); c.Count != 2 {
		t.Errorf("unread %d, want 2", c.Count)
	}
	time.Sleep(time.Until(got[0].Notification().ExpiresAt.Add(100 * time.Millisecond)))
	if m := messages(kim.history("")); m != "fresh" {
		t.Errorf("history after soon expired: %s", m)
	}
	if c := kim.counts(); c.Count != 1 {
		t.Errorf("unread after soon expired %d, want 1", c.Count)
	}
	replay := apptest.Open(t, srv.URL(), kim.token, "0")
	if m := replay.Notifications(1, 10*time.Second)[0]; m.Notification().Message != "fresh" {
		t.Errorf("replay from 0 starts with %q, want fresh (the others expired)", m.Notification().Message)
	}
	if code := api(t, "POST", srv.URL()+"/api/notifications", env.Token("svc", "ADMIN"),
		`{"message":"x","targetUserId":"kim","expiresAt":"2001-01-01T00:00:00Z"}`, nil); code != 400 {
		t.Errorf("publishing an expired notification: %d, want 400", code)
	}
}

// TestInboxActions: actions travel with the notification, unsafe ones are
// refused from HTTP and SQL, and a click is recorded, marks the
// notification read and reaches the user's other streams.
func TestInboxActions(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	admin := env.Token("svc", "ADMIN")
	ida := inboxUser{t: t, url: srv.URL(), token: env.Token("ida")}
	stream := apptest.Open(t, srv.URL(), ida.token, "")
	for _, bad := range []string{
		`[{"id":"go","label":"Go","url":"javascript:alert(1)"}]`,
		`[{"id":"go","label":"Go","url":"//evil.example/x"}]`,
		`[{"id":"go","label":" "}]`,
		`[{"id":"go","label":"A"},{"id":"go","label":"B"}]`,
		`[{"id":"a b","label":"A"}]`,
		`[{"id":"go","label":"Go","target":"_blank"}]`,
		`[{"id":"1","label":"1"},{"id":"2","label":"2"},{"id":"3","label":"3"},{"id":"4","label":"4"},{"id":"5","label":"5"},{"id":"6","label":"6"}]`,
		`{"id":"go","label":"Go"}`,
	} {
		if code := api(t, "POST", srv.URL()+"/api/notifications", admin, `{"message":"x","targetUserId":"ida","actions":`+bad+`}`, nil); code != 400 {
			t.Errorf("HTTP actions %s: %d, want 400", bad, code)
		}
		if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_user_id, actions) VALUES ('x', 'ida', $1)`, bad); err == nil ||
			!strings.Contains(err.Error(), "notifications_actions_check") && !strings.Contains(err.Error(), "invalid input syntax") {
			t.Errorf("SQL actions %s: %v, want the check constraint", bad, err)
		}
	}
	var out struct {
		Notification wire.Notification `json:"notification"`
	}
	if code := api(t, "POST", srv.URL()+"/api/notifications", admin, `{"message":"Approve leave?","targetUserId":"ida",
		"actions":[{"id":"approve","label":"Approve","url":"/leave/7"},{"id":"deny","label":"Deny"}]}`, &out); code != 201 {
		t.Fatalf("publish with actions: %d", code)
	}
	got := stream.Notifications(1, 10*time.Second)[0].Notification()
	if len(got.Actions) != 2 || got.Actions[0].URL != "/leave/7" || got.Actions[1].Label != "Deny" {
		t.Fatalf("the stream's actions: %+v", got.Actions)
	}
	other := apptest.Open(t, srv.URL(), ida.token, "")
	other.NextOfType("connected", 10*time.Second)
	ida.post(got.ID+"/interact", `{"action":"escalate"}`, 400)
	ida.post(got.ID+"/interact", `{}`, 400)
	ida.post(got.ID+"/interact", `{"action":"approve"}`, 204)
	if d := nextChange(t, other, "interact"); d.Change.NotificationID != got.ID || *d.UnreadCount != 0 {
		t.Errorf("interact status: %+v unread %d", d.Change, *d.UnreadCount)
	}
	items := ida.history("")
	if len(items) != 1 || !items[0].Read || items[0].Interaction == nil || *items[0].Interaction != "approve" || items[0].InteractedAt == nil {
		t.Errorf("history after the click: %+v", items)
	}
	if !strings.Contains(string(items[0].Actions), `"approve"`) {
		t.Errorf("history without actions: %s", items[0].Actions)
	}
}
