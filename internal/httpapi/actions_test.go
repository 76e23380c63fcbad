package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
)

func TestTestActionGoesToTheCallerOnly(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	s := setup(t)
	caller := s.mustOpen(t, "/api/notifications/ws", s.user)
	caller.connected(t)
	other := s.mustOpen(t, "/api/notifications/ws", s.other)
	other.connected(t)

	type testAnswer struct {
		Success      bool `json:"success"`
		Notification struct {
			ID           string   `json:"id"`
			Message      string   `json:"message"`
			Severity     string   `json:"severity"`
			Module       *string  `json:"module"`
			TargetUserID *string  `json:"targetUserId"`
			TargetRoles  []string `json:"targetRoles"`
		} `json:"notification"`
	}
	var plain testAnswer
	s.postJSON(t, "/api/notifications/ws", s.user, map[string]any{"action": "test"}).decode(t, http.StatusOK, &plain)
	n := plain.Notification
	if !plain.Success || n.ID == "" || n.TargetUserID == nil || *n.TargetUserID != "user-1" || len(n.TargetRoles) != 0 ||
		n.Message == "" || n.Severity != "low" || n.Module == nil || *n.Module != "test" {
		t.Fatalf("test answered %+v, want a low test notification for user-1 alone", plain)
	}
	caller.expectNext(t, n.ID)

	// Targets in the body are ignored: a plain user cannot aim the test at
	// someone else or at a role.
	var aimed testAnswer
	s.postJSON(t, "/api/notifications/ws", s.user, map[string]any{
		"action": "test", "message": "aimed", "targetUserId": "user-2", "targetRoles": []string{"USER"},
	}).decode(t, http.StatusOK, &aimed)
	if aimed.Notification.TargetUserID == nil || *aimed.Notification.TargetUserID != "user-1" ||
		len(aimed.Notification.TargetRoles) != 0 || aimed.Notification.Message != "aimed" {
		t.Fatalf("aimed test answered %+v, want it for user-1 alone", aimed)
	}
	caller.expectNext(t, aimed.Notification.ID)

	fence := s.fence(t)
	caller.expectNext(t, fence)
	other.expectNext(t, fence) // neither test notification reached user-2
}

// statusAnswer is the answer to the status action.
type statusAnswer struct {
	Success     bool           `json:"success"`
	UserID      string         `json:"userId"`
	IsAdmin     bool           `json:"isAdmin"`
	Connections map[string]any `json:"connections"`
	Queue       map[string]any `json:"queue"`
	Stream      map[string]any `json:"stream"`
}

// streamUsers lists the userId of every stream in a status answer.
func (a statusAnswer) streamUsers(t testing.TB) []string {
	t.Helper()
	list, ok := a.Connections["streams"].([]any)
	if !ok {
		t.Fatalf("connections.streams is %T, want a list", a.Connections["streams"])
	}
	var users []string
	for _, s := range list {
		m, _ := s.(map[string]any)
		u, _ := m["userId"].(string)
		users = append(users, u)
	}
	return users
}

func TestStatusAction(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, tok := range []string{s.user, s.user, s.other} {
		s.mustOpen(t, "/api/notifications/ws", tok).connected(t)
	}

	t.Run("plain user sees its own connections and no queue", func(t *testing.T) {
		var raw map[string]any
		r := s.postJSON(t, "/api/notifications/ws", s.user, map[string]any{"action": "status"})
		r.decode(t, http.StatusOK, &raw)
		var a statusAnswer
		r.decode(t, http.StatusOK, &a)
		if !a.Success || a.UserID != "user-1" || a.IsAdmin {
			t.Errorf("status %s: want success for user-1, not admin", r.body)
		}
		if mine := a.Connections["mine"]; mine != float64(2) {
			t.Errorf("connections.mine = %v, want 2", mine)
		}
		users := a.streamUsers(t)
		if len(users) != 2 || users[0] != "user-1" || users[1] != "user-1" {
			t.Errorf("streams of users %q, want user-1's two only", users)
		}
		for _, hidden := range []string{"queue", "stream"} {
			if _, ok := raw[hidden]; ok {
				t.Errorf("a plain user's status shows %q: %s", hidden, r.body)
			}
		}
		for _, hidden := range []string{"total", "node"} {
			if _, ok := a.Connections[hidden]; ok {
				t.Errorf("a plain user's status shows connections.%s: %s", hidden, r.body)
			}
		}
	})

	t.Run("admin sees every connection and the queue", func(t *testing.T) {
		id := s.publish(t, map[string]any{"message": "counted", "targetUserId": "user-2"})
		seq := s.waitPublished(t, id)[0]
		var a statusAnswer
		var body []byte
		testkit.Eventually(t, 10*time.Second, "queue item counted as sent", func() bool {
			r := s.postJSON(t, "/api/notifications/ws", s.admin, map[string]any{"action": "status"})
			a = statusAnswer{}
			r.decode(t, http.StatusOK, &a)
			body = r.body
			return a.Queue["sent"] == float64(1)
		})
		if !a.Success || a.UserID != "admin-1" || !a.IsAdmin {
			t.Errorf("status %s: want success for admin-1, admin", body)
		}
		if a.Connections["total"] != float64(3) || a.Connections["mine"] != float64(0) {
			t.Errorf("connections %v: want total 3, mine 0", a.Connections)
		}
		if users := a.streamUsers(t); len(users) != 3 {
			t.Errorf("streams of users %q, want all three", users)
		}
		for _, k := range []string{"pending", "processing", "failed"} {
			if a.Queue[k] != float64(0) {
				t.Errorf("queue.%s = %v, want 0 (%s)", k, a.Queue[k], body)
			}
		}
		if a.Stream["lastSeq"] != float64(seq) {
			t.Errorf("stream.lastSeq = %v, want %d", a.Stream["lastSeq"], seq)
		}
	})
}
