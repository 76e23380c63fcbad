package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// fence publishes a notification to everyone and returns its id: once a
// stream has received it, anything published before it that the stream did
// not receive is never coming (a stream's notifications arrive in seq order).
func (s *server) fence(t testing.TB) string {
	t.Helper()
	return s.publish(t, map[string]any{"message": "fence", "module": "fence"})
}

// expectNext checks that the stream's next notification is id.
func (rs *rawStream) expectNext(t testing.TB, id string) event {
	t.Helper()
	ev := rs.skipHeartbeats(t, 10*time.Second)
	if ev.msg.Type != "notification" || ev.msg.NotificationID != id {
		t.Fatalf("%snext event %q, want notification %s", rs.name, ev.raw, id)
	}
	return ev
}

func TestCreateAndNotify(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	s := setup(t)
	target := s.mustOpen(t, "/api/notifications/ws", s.user)
	target.connected(t)
	bystander := s.mustOpen(t, "/api/notifications/ws", s.other)
	bystander.connected(t)

	r := s.postJSON(t, "/api/notifications/ws", s.admin, map[string]any{
		"action": "create-and-notify", "targetUserId": "user-1", "module": "orders", "actionType": "new_order",
		"message": "Order 42 is ready", "details": "Table 7", "severity": "high", "data": map[string]any{"orderId": 42},
	})
	var c created
	r.decode(t, http.StatusOK, &c)
	if !c.Success || !uuidRE.MatchString(c.Notification.ID) {
		t.Fatalf(`answer %s, want {"success": true, "notification": {"id": <uuid>, …}}`, r.body)
	}
	if c.Notification.Message != "Order 42 is ready" || c.Notification.Severity != "high" ||
		c.Notification.Module == nil || *c.Notification.Module != "orders" {
		t.Errorf("answer %s does not echo the notification", r.body)
	}

	ev := target.expectNext(t, c.Notification.ID)
	d := dataMap(t, ev.msg)
	if d["message"] != "Order 42 is ready" || d["targetUserId"] != "user-1" || d["actionType"] != "new_order" {
		t.Errorf("delivered %s", ev.msg.Data)
	}
	fence := s.fence(t)
	target.expectNext(t, fence)
	bystander.expectNext(t, fence) // and not the one for user-1 before it
}

func TestBroadcastReachesRoleHolders(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	s := setup(t)
	ops := s.mustOpen(t, "/api/notifications/ws", s.env.Token("user-3", "OPS"))
	ops.connected(t)
	plain := s.mustOpen(t, "/api/notifications/ws", s.user)
	plain.connected(t)

	var c created
	s.postJSON(t, "/api/notifications/ws", s.admin, map[string]any{
		"action": "broadcast", "message": "deploy at 5", "targetRoles": []string{"OPS"},
	}).decode(t, http.StatusOK, &c)
	if !c.Success || c.Notification.ID == "" || len(c.Notification.TargetRoles) != 1 {
		t.Fatalf("broadcast answered %+v", c)
	}
	ops.expectNext(t, c.Notification.ID)

	var all created
	s.postJSON(t, "/api/notifications/ws", s.admin, map[string]any{"action": "broadcast", "message": "hello all"}).
		decode(t, http.StatusOK, &all)
	ops.expectNext(t, all.Notification.ID)
	plain.expectNext(t, all.Notification.ID) // and not the OPS one before it
}

func TestPostNotifications(t *testing.T) {
	t.Parallel()
	s := setup(t)

	t.Run("201 with charset in the content type", func(t *testing.T) {
		r := s.do(t, http.MethodPost, "/api/notifications",
			bearer(s.admin, "Content-Type", "application/json; charset=utf-8"), []byte(`{"message":"hi"}`))
		var c created
		r.decode(t, http.StatusCreated, &c)
		if !c.Success || !uuidRE.MatchString(c.Notification.ID) || c.Notification.Severity != "medium" ||
			string(c.Notification.Data) != "{}" {
			t.Errorf("answer %s: want success, a uuid, severity medium by default and data {}", r.body)
		}
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("a new notification is marked Idempotent-Replayed")
		}
	})

	t.Run("Idempotency-Key", func(t *testing.T) {
		body := map[string]any{"message": "invoice 7 paid", "targetUserId": "user-1", "severity": "low"}
		first := s.postJSON(t, "/api/notifications", s.admin, body, "Idempotency-Key", "invoice-7")
		var a created
		first.decode(t, http.StatusCreated, &a)

		again := s.postJSON(t, "/api/notifications", s.admin, body, "Idempotency-Key", "invoice-7")
		var b created
		again.decode(t, http.StatusOK, &b)
		if b.Notification.ID != a.Notification.ID {
			t.Errorf("repeat answered id %s, want %s", b.Notification.ID, a.Notification.ID)
		}
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("repeat lacks Idempotent-Replayed: true")
		}

		// The key in the body is the same key.
		inBody := map[string]any{"message": "invoice 7 paid", "targetUserId": "user-1", "severity": "low",
			"idempotencyKey": "invoice-7"}
		var c created
		s.postJSON(t, "/api/notifications", s.admin, inBody).decode(t, http.StatusOK, &c)
		if c.Notification.ID != a.Notification.ID {
			t.Errorf("key in body answered id %s, want %s", c.Notification.ID, a.Notification.ID)
		}

		conflict := s.postJSON(t, "/api/notifications", s.admin,
			map[string]any{"message": "invoice 7 refunded", "targetUserId": "user-1", "severity": "low"},
			"Idempotency-Key", "invoice-7")
		if msg := conflict.errorMessage(t, http.StatusConflict); !contains(msg, "idempotency") {
			t.Errorf("409 message %q should name the idempotency key", msg)
		}
		retarget := s.postJSON(t, "/api/notifications", s.admin,
			map[string]any{"message": "invoice 7 paid", "targetUserId": "user-2", "severity": "low"},
			"Idempotency-Key", "invoice-7")
		retarget.errorMessage(t, http.StatusConflict)

		s.expectRows(t, "invoice-7", 1)
	})

	t.Run("concurrent retries create one row", func(t *testing.T) {
		const n = 8
		body, _ := json.Marshal(map[string]any{"message": "race", "targetUserId": "user-2"})
		replies := make([]reply, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				replies[i], errs[i] = s.tryDo(http.MethodPost, "/api/notifications",
					jsonBody(s.admin, "Idempotency-Key", "race-1"), body)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		createdCount := 0
		for _, r := range replies {
			var c created
			switch r.status {
			case http.StatusCreated:
				createdCount++
			case http.StatusOK:
			default:
				t.Fatalf("concurrent retry answered %d: %s", r.status, r.body)
			}
			r.decode(t, r.status, &c)
			ids[c.Notification.ID] = true
		}
		if createdCount != 1 || len(ids) != 1 {
			t.Errorf("%d answers were 201 and %d ids were given, want 1 and 1", createdCount, len(ids))
		}
		s.expectRows(t, "race-1", 1)
	})
}

// expectRows checks how many notifications, and queue items of theirs, hold
// the idempotency key.
func (s *server) expectRows(t testing.TB, key string, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var notes, items int
	err := s.env.DB.Pool.QueryRow(ctx, `SELECT count(DISTINCT n.id), count(q.id)
		FROM notify.notifications n LEFT JOIN notify.queue_items q ON q.notification_id = n.id
		WHERE n.idempotency_key = $1`, key).Scan(&notes, &items)
	if err != nil {
		t.Fatalf("count rows for key %s: %v", key, err)
	}
	if notes != want || items != want {
		t.Errorf("key %s: %d notifications and %d queue items, want %d of each", key, notes, items, want)
	}
}

// TestDataNullMeansNoData pins that "data": null is accepted as "no data"
// (notify.Validate's checkData says so) and stored as {}.
func TestDataNullMeansNoData(t *testing.T) {
	t.Parallel()
	s := setup(t)
	before := s.counts(t)
	r := s.do(t, http.MethodPost, "/api/notifications", jsonBody(s.admin), []byte(`{"message":"x","data":null}`))
	var c created
	r.decode(t, http.StatusCreated, &c)
	if string(c.Notification.Data) != "{}" {
		t.Errorf("data %s, want {}", c.Notification.Data)
	}
	if after := s.counts(t); after.notifications != before.notifications+1 || after.queueItems != before.queueItems+1 {
		t.Errorf("rows went from %+v to %+v, want one more of each", before, after)
	}
}

// TestDataMayHoldTheTextBackslashU0000 pins that only a real NUL is refused:
// an escaped backslash followed by "u0000" is ordinary text.
func TestDataMayHoldTheTextBackslashU0000(t *testing.T) {
	t.Parallel()
	s := setup(t)
	r := s.do(t, http.MethodPost, "/api/notifications", jsonBody(s.admin),
		[]byte(`{"message":"x","data":{"pattern":"\\u0000","\\u0000":"key"}}`))
	var c created
	r.decode(t, http.StatusCreated, &c)
	var d map[string]string
	if err := json.Unmarshal(c.Notification.Data, &d); err != nil || d["pattern"] != `\u0000` || d[`\u0000`] != "key" {
		t.Errorf("data %s (%v), want the text \\u0000 back", c.Notification.Data, err)
	}
}
