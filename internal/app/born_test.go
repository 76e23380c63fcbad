package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestBornPublished: a notification sent with SELECT notify.send(...) and
// one published over HTTP (which sends it the same way) reach the stream
// live, under the seq their sender was answered with, their queue items
// sent with no worker's attempt beyond the send.
func TestBornPublished(t *testing.T) {
	t.Parallel()
	env, srv := apptest.NewNode(t)
	ctx := context.Background()
	alice := apptest.Open(t, srv.URL(), env.Token("alice", "USER"), "")
	if _, ok := alice.NextOfType("connected", 5*time.Second); !ok {
		t.Fatal("no connected message")
	}

	start := time.Now()
	var sqlSeq int64
	if err := env.DB.Pool.QueryRow(ctx, `SELECT (notification).seq FROM notify.send('from sql', target_user_id => 'alice')`).Scan(&sqlSeq); err != nil {
		t.Fatal(err)
	}
	if got := apptest.SeqOf(nextNotification(t, alice, "from sql", start)); sqlSeq == 0 || got != sqlSeq {
		t.Fatalf("notify.send answered seq %d, the stream got it as %d", sqlSeq, got)
	}

	start = time.Now()
	code, body := bouncerDo(t, http.MethodPost, srv.URL()+"/api/notifications", env.Token("ops", "ADMIN"),
		`{"targetUserId":"alice","message":"over http","severity":"high"}`)
	var created struct {
		Success      bool `json:"success"`
		Notification struct {
			ID  string `json:"id"`
			Seq int64  `json:"seq"`
		} `json:"notification"`
	}
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || !created.Success || created.Notification.ID == "" {
		t.Fatalf("POST /api/notifications: %d %s", code, body)
	}
	if got := apptest.SeqOf(nextNotification(t, alice, "over http", start)); created.Notification.Seq <= sqlSeq || got != created.Notification.Seq {
		t.Fatalf("POST answered seq %d (after %d), the stream got it as %d", created.Notification.Seq, sqlSeq, got)
	}

	var items, sentOnce int64
	if err := env.DB.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'sent' AND attempts = 1 AND sent_at IS NOT NULL)
		FROM notify.queue_items`).Scan(&items, &sentOnce); err != nil {
		t.Fatal(err)
	}
	if items != 2 || sentOnce != 2 {
		t.Fatalf("%d queue items, %d sent after one attempt; want 2 and 2", items, sentOnce)
	}
}
