package wire_test

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/wire"
)

// splitEvent checks that frame is one SSE event (lines ending in \n, a blank
// line at the end and nowhere else) and returns its lines.
func splitEvent(t *testing.T, frame []byte) []string {
	t.Helper()
	s := string(frame)
	body, ok := strings.CutSuffix(s, "\n\n")
	if !ok || strings.Contains(body, "\n\n") || strings.Contains(s, "\r") {
		t.Fatalf("frame %q is not exactly one SSE event", s)
	}
	return strings.Split(body, "\n")
}

// dataJSON decodes the JSON of a data line.
func dataJSON(t *testing.T, line string) map[string]any {
	t.Helper()
	v, ok := strings.CutPrefix(line, "data: ")
	if !ok {
		t.Fatalf("line %q is not a data line", line)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatalf("data %q: %v", v, err)
	}
	return m
}

func sample() notify.Notification {
	created := time.Date(2026, 3, 4, 5, 6, 7, 800_000_000, time.UTC)
	return notify.Notification{
		ID: "5f0c2a7e-8a0e-4a47-9d3c-1f2e3d4c5b6a", Seq: 12345,
		Target: notify.Target{UserID: "user-1", Roles: []string{"OPS"}}, Module: "orders", ActionType: "new_order",
		Details: "two\nlines", Message: "first\r\nsecond\u2028third", Severity: notify.SeverityHigh,
		Data: json.RawMessage("{\n  \"orderId\": 42\n}"), CreatedAt: created, PublishedAt: created.Add(time.Second),
	}
}

func TestNotificationFrame(t *testing.T) {
	n := sample()
	f := wire.NotificationEvent(n)
	lines := splitEvent(t, f)
	if len(lines) != 2 || lines[0] != "id: 12345" {
		t.Fatalf("frame %q, want an id line and one data line", f)
	}
	m := dataJSON(t, lines[1])
	if m["type"] != "notification" || m["notificationId"] != n.ID || m["timestamp"] != float64(n.PublishedAt.UnixMilli()) {
		t.Errorf("message %v: want type notification, notificationId and the publish time", m)
	}
	for _, k := range []string{"userId", "userRole"} {
		if _, ok := m[k]; ok {
			t.Errorf("a notification message carries %s", k)
		}
	}
	d := m["data"].(map[string]any)
	want := []string{"actionType", "createdAt", "data", "details", "id", "message", "module", "seq", "severity",
		"targetRoles", "targetUserId"}
	if keys := slices.Sorted(maps.Keys(d)); !slices.Equal(keys, want) {
		t.Errorf("data keys %q, want %q", keys, want)
	}
	if d["message"] != n.Message || d["details"] != n.Details || d["seq"] != float64(n.Seq) ||
		d["createdAt"] != "2026-03-04T05:06:07.8Z" || d["severity"] != "high" || d["targetUserId"] != "user-1" {
		t.Errorf("data %v does not carry the notification", d)
	}
	if got, _ := json.Marshal(d["data"]); string(got) != `{"orderId":42}` {
		t.Errorf("data.data %s", got)
	}
}

func TestNotificationFrameTimestampFallsBackToCreatedAt(t *testing.T) {
	n := sample()
	n.PublishedAt = time.Time{}
	m := dataJSON(t, splitEvent(t, wire.NotificationEvent(n))[1])
	if m["timestamp"] != float64(n.CreatedAt.UnixMilli()) {
		t.Errorf("timestamp %v, want created_at %d", m["timestamp"], n.CreatedAt.UnixMilli())
	}
}

func TestNotificationOfMinimal(t *testing.T) {
	d := wire.NotificationOf(notify.Notification{ID: "x", Seq: 1, Message: "m", Severity: notify.SeverityLow})
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"module", "actionType", "details", "targetUserId", "targetRoles"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %t), want null", k, v, ok)
		}
	}
	if got, _ := json.Marshal(m["data"]); string(got) != "{}" {
		t.Errorf("data %s, want {}", got)
	}
}

func TestMessageFrames(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	hb := wire.HeartbeatEvent(at)
	if string(hb) != "data: {\"type\":\"heartbeat\",\"timestamp\":1700000000123}\n\n" {
		t.Errorf("heartbeat frame %q", hb)
	}
	st := wire.MessageEvent(wire.Message{Type: "status", Timestamp: 5,
		Data: map[string]any{"replay": "truncated", "note": "a\nb"}})
	lines := splitEvent(t, st)
	if len(lines) != 1 {
		t.Fatalf("status frame %q: want one data line and no id", st)
	}
	if m := dataJSON(t, lines[0]); m["type"] != "status" || m["data"].(map[string]any)["note"] != "a\nb" {
		t.Errorf("status message %v", m)
	}
}

// FuzzNotificationFrame checks that no message, details or data can break
// out of the event: the frame is always one id line and one data line whose
// JSON gives the fields back.
func FuzzNotificationFrame(f *testing.F) {
	f.Add(int64(1), "hello", "", []byte(`{}`))
	f.Add(int64(9), "a\nb\r\nc\rd", "\n\ndata: forged\n\n", []byte("{\"k\":\n\"v\"}"))
	f.Add(int64(math.MaxInt64), "\u2028\u2029\x00", "id: 1", []byte(`{"k":"\n"}`))
	f.Add(int64(3), "x", "y", []byte(`not json`))
	f.Add(int64(4), "\xff", "", []byte(""))
	f.Fuzz(func(t *testing.T, seq int64, message, details string, data []byte) {
		if seq <= 0 {
			return // only published notifications are framed
		}
		n := notify.Notification{ID: "id", Seq: seq, Message: message, Details: details, Severity: notify.SeverityLow,
			Data: data, CreatedAt: time.Unix(0, 0)}
		frame := wire.NotificationEvent(n)
		lines := splitEvent(t, frame)
		if len(lines) != 2 || lines[0] != "id: "+strconv.FormatInt(seq, 10) || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("frame %q, want an id line and one data line", frame)
		}
		m := dataJSON(t, lines[1])
		if len(data) > 0 && !json.Valid(data) {
			return // unencodable data: the frame stays well formed, checked above
		}
		d, ok := m["data"].(map[string]any)
		if !ok {
			t.Fatalf("message %v has no notification data", m)
		}
		// JSON replaces invalid UTF-8; compare what a client would decode.
		wantMsg, _ := json.Marshal(message)
		var decoded string
		_ = json.Unmarshal(wantMsg, &decoded)
		if d["message"] != decoded {
			t.Fatalf("message %q came back as %q", decoded, d["message"])
		}
	})
}
