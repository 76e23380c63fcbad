package inboxsync_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/inboxsync"
	"github.com/notifyd/notifyd/internal/listener"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is one node's inbox sync, listening on a test database.
type node struct {
	db    *pgtest.DB
	inbox *postgres.Inbox
	hub   *hub.Hub
	sync  *inboxsync.Sync
	logs  logLines
}

// setup starts a listener that hands Channel to a Sync, as app wires it,
// and returns once the listener hears.
func setup(t *testing.T) *node {
	t.Helper()
	db := pgtest.NewQueued(t)
	n := &node{db: db, inbox: postgres.NewInbox(db.Pool), hub: hub.New(hub.Config{}), logs: make(logLines, 16)}
	n.sync = inboxsync.New(n.inbox, n.hub, slog.New(slog.NewTextHandler(n.logs, nil)))
	lis, err := listener.New(listener.Config{URL: db.URL, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	lis.Handle(inboxsync.Channel, n.sync.Receive)
	connected := make(chan struct{})
	var once sync.Once
	lis.OnConnect(func() { once.Do(func() { close(connected) }) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = lis.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-time.After(15 * time.Second):
		t.Fatal("the listener did not connect")
	}
	return n
}

func (n *node) subscribe(t *testing.T, userID string) *hub.Subscriber {
	t.Helper()
	sub, err := n.hub.Subscribe(notify.Identity{UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.hub.Unsubscribe(sub) })
	return sub
}

// publishFor inserts and publishes one notification per message for userID
// and returns their ids and the last seq.
func (n *node) publishFor(t *testing.T, userID string, messages ...string) (ids []string, last int64) {
	t.Helper()
	ctx := context.Background()
	for _, m := range messages {
		var id string
		if err := n.db.Pool.QueryRow(ctx, `INSERT INTO notify.notifications (message, target_user_id) VALUES ($1, $2) RETURNING id`, m, userID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	b, err := postgres.NewQueue(n.db.Pool).ClaimAndPublish(ctx, 100, time.Minute)
	if err != nil || b.Items != len(messages) {
		t.Fatalf("publish: %d items, %v", b.Items, err)
	}
	return ids, b.LastSeq
}

// status is a status message's data as a stream sends it.
type status struct {
	UnreadCount    int            `json:"unreadCount"`
	HasMore        bool           `json:"hasMore"`
	CountedThrough int64          `json:"countedThrough"`
	Change         map[string]any `json:"change"`
}

// nextStatus waits for sub's next frame and decodes it as a status message.
func nextStatus(t *testing.T, sub *hub.Subscriber) status {
	t.Helper()
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no status message on the user's stream")
	}
	frames := sub.Take(nil)
	if len(frames) != 1 {
		t.Fatalf("%d frames, want one status message", len(frames))
	}
	var msg struct {
		Type string `json:"type"`
		Data status `json:"data"`
	}
	data, ok := strings.CutPrefix(strings.TrimSpace(string(frames[0].Data)), "data: ")
	if !ok || json.Unmarshal([]byte(data), &msg) != nil || msg.Type != "status" || frames[0].Seq != 0 {
		t.Fatalf("not a status message: %q", frames[0].Data)
	}
	return msg.Data
}

// TestChangesReachEveryStreamOfTheUserOnly: a published change arrives on
// each of the user's streams as a status message with the count read after
// the change and what changed, and on no one else's.
func TestChangesReachEveryStreamOfTheUserOnly(t *testing.T) {
	t.Parallel()
	n := setup(t)
	ctx := context.Background()
	phone, laptop, bob := n.subscribe(t, "ann"), n.subscribe(t, "ann"), n.subscribe(t, "bob")
	ann := notify.Identity{UserID: "ann"}
	ids, last := n.publishFor(t, "ann", "a", "b")

	seq, err := n.inbox.SetRead(ctx, ann, ids[0], true)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.sync.Publish(ctx, ann, inboxsync.Change{Action: inboxsync.ActionRead, NotificationID: ids[0], Seq: seq}); err != nil {
		t.Fatal(err)
	}
	for name, sub := range map[string]*hub.Subscriber{"phone": phone, "laptop": laptop} {
		st := nextStatus(t, sub)
		if st.UnreadCount != 1 || st.HasMore || st.CountedThrough != last ||
			st.Change["action"] != "read" || st.Change["notificationId"] != ids[0] || st.Change["seq"] != float64(seq) {
			t.Errorf("%s got %+v, want 1 unread through %d after reading %s (seq %d)", name, st, last, ids[0], seq)
		}
	}

	mark, err := n.inbox.ReadAll(ctx, ann, last)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.sync.Publish(ctx, ann, inboxsync.Change{Action: inboxsync.ActionReadAll, Seq: mark}); err != nil {
		t.Fatal(err)
	}
	st := nextStatus(t, phone)
	if _, has := st.Change["notificationId"]; st.UnreadCount != 0 || st.Change["action"] != "read-all" || st.Change["seq"] != float64(mark) || has {
		t.Errorf("after read-all got %+v, want 0 unread and change {read-all, seq %d}", st, mark)
	}
	nextStatus(t, laptop)
	if frames := bob.Take(nil); len(frames) != 0 {
		t.Errorf("another user's stream got %q", frames[0].Data)
	}
}

// TestPreferencesTakeEffectBeforeTheStatus: by the time a stream is told
// its user's mutes changed, the hub applies the new mutes to it.
func TestPreferencesTakeEffectBeforeTheStatus(t *testing.T) {
	t.Parallel()
	n := setup(t)
	ctx := context.Background()
	sub := n.subscribe(t, "ann")
	if err := n.inbox.SetMutedModules(ctx, "ann", []string{"billing"}); err != nil {
		t.Fatal(err)
	}
	if err := n.sync.Publish(ctx, notify.Identity{UserID: "ann"}, inboxsync.Change{Action: inboxsync.ActionPreferences}); err != nil {
		t.Fatal(err)
	}
	if st := nextStatus(t, sub); st.Change["action"] != "preferences" {
		t.Fatalf("got %+v, want change {preferences}", st)
	}
	for i, ev := range []hub.Event{
		{Module: "billing", Severity: notify.SeverityLow},
		{Module: "billing", Severity: notify.SeverityCritical},
		{Module: "orders", Severity: notify.SeverityLow},
	} {
		ev.Frame = hub.Frame{Seq: int64(i + 1), Data: []byte("x")}
		ev.Target = notify.Target{UserID: "ann"}
		n.hub.Publish(&ev)
	}
	var got []int64
	for _, f := range sub.Take(nil) {
		got = append(got, f.Seq)
	}
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("delivered seqs %v, want [2 3] (billing is muted, critical passes)", got)
	}
}

// TestMalformedAnnouncementsAreDropped: a payload that is not a Change, or
// names no user, is logged and reaches no stream.
func TestMalformedAnnouncementsAreDropped(t *testing.T) {
	t.Parallel()
	n := setup(t)
	sub := n.subscribe(t, "")
	for _, payload := range []string{`not json`, `{"a":"read","c":3}`} {
		if err := n.inbox.Announce(context.Background(), inboxsync.Channel, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case line := <-n.logs:
			if !strings.Contains(line, "ignoring a malformed inbox announcement") {
				t.Fatalf("logged %q, want the malformed announcement ignored", line)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a malformed announcement was not logged")
		}
	}
	if frames := sub.Take(nil); len(frames) != 0 {
		t.Errorf("a malformed announcement reached a stream: %q", frames[0].Data)
	}
}

// logLines passes on the lines a logger writes (a slog handler writes one
// record at a time), dropping those no test waits for.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}
