package httpapi_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/testkit"
)

// heartbeat is the interval the stream tests configure.
const heartbeat = 50 * time.Millisecond

// notificationKeys are the keys of a notification message's data.
var notificationKeys = []string{"actionType", "createdAt", "data", "details", "id", "message", "module",
	"seq", "severity", "targetRoles", "targetUserId"}

var (
	retryPrefixRE = regexp.MustCompile(`^retry: [0-9]+\ndata: \{"type":"connected"`)
	heartbeatRE   = regexp.MustCompile(`^data: \{"type":"heartbeat","timestamp":[0-9]+\}\n\n$`)
)

// checkWireEvent checks what every event must satisfy: one data line of
// JSON, no event field, an id line exactly on notifications.
func checkWireEvent(t testing.TB, ev event) {
	t.Helper()
	var data, ids int
	for _, l := range ev.lines {
		switch {
		case strings.HasPrefix(l, "data: "):
			data++
		case strings.HasPrefix(l, "id: "):
			ids++
		case strings.HasPrefix(l, "retry: "):
		default:
			t.Errorf("unexpected line %q in event %q", l, ev.raw)
		}
	}
	if data != 1 {
		t.Errorf("event %q has %d data lines, want 1", ev.raw, data)
	}
	if isNote := ev.msg.Type == "notification"; isNote != (ids == 1) || ids > 1 {
		t.Errorf("event %q of type %s has %d id lines; only notifications carry one", ev.raw, ev.msg.Type, ids)
	}
	if ev.msg.Timestamp <= 0 {
		t.Errorf("event %q has no timestamp", ev.raw)
	}
}

func TestStreamWireFormat(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	s := setup(t, func(c *app.Config) { c.Stream.HeartbeatInterval = heartbeat })
	// Asking for gzip must not get it: compression would buffer the stream.
	rs, r := s.open(t, "/api/notifications/ws", bearer(s.user, "Accept-Encoding", "gzip, deflate, br"))
	if rs == nil {
		t.Fatalf("stream answered %d: %s", r.status, r.body)
	}

	t.Run("headers", func(t *testing.T) {
		want := map[string]string{
			"Content-Type":      "text/event-stream",
			"Cache-Control":     "no-cache, no-transform",
			"X-Accel-Buffering": "no",
			"Content-Encoding":  "",
		}
		for k, v := range want {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		if rs.resp.Uncompressed {
			t.Errorf("the transport decompressed the stream")
		}
	})

	var seen []event
	t.Run("opens with retry, then connected", func(t *testing.T) {
		prefix := <-rs.prefix
		if !retryPrefixRE.Match(prefix) {
			t.Fatalf("stream starts %q, want a retry: line, then the connected message in the same event", prefix)
		}
		// The retry field rides on the connected event: a lone retry:
		// block is dispatched as an empty event by some SSE libraries.
		ev := rs.next(t, 5*time.Second)
		if !strings.HasPrefix(ev.raw, "retry: 2000\ndata: ") {
			t.Errorf("first event %q, want it to start with %q", ev.raw, "retry: 2000\ndata: ")
		}
		seen = append(seen, ev)
		m := ev.msg
		if m.Type != "connected" || m.UserID != "user-1" || m.UserRole != "USER" || ev.hasID {
			t.Fatalf("connected event %q", ev.raw)
		}
		if d := time.Since(time.UnixMilli(m.Timestamp)); d < -time.Minute || d > time.Minute {
			t.Errorf("connected timestamp %d is %s from now", m.Timestamp, d)
		}
		d := dataMap(t, m)
		if d["heartbeatInterval"] != float64(heartbeat.Milliseconds()) {
			t.Errorf("data.heartbeatInterval = %v, want %d", d["heartbeatInterval"], heartbeat.Milliseconds())
		}
		if v, ok := d["resumeFrom"]; !ok || v != nil {
			t.Errorf("data.resumeFrom = %v (present %t), want null without a resume point", v, ok)
		}
		if _, ok := d["connectionId"].(float64); !ok {
			t.Errorf("data.connectionId = %v, want a number", d["connectionId"])
		}
	})

	t.Run("heartbeats at the configured interval", func(t *testing.T) {
		const n = 6
		var stamps []int64
		start := time.Now()
		for len(stamps) < n {
			ev := rs.nextOfType(t, "heartbeat", 5*time.Second)
			seen = append(seen, ev)
			if !heartbeatRE.MatchString(ev.raw) {
				t.Errorf("heartbeat event %q", ev.raw)
			}
			stamps = append(stamps, ev.msg.Timestamp)
		}
		for i := 1; i < n; i++ {
			if stamps[i] <= stamps[i-1] {
				t.Errorf("heartbeat timestamps %v do not increase", stamps)
			}
		}
		// A late tick can make one gap short, but not the span: n
		// heartbeats cover at least n-2 intervals.
		if span := time.Duration(stamps[n-1]-stamps[0]) * time.Millisecond; span < (n-2)*heartbeat {
			t.Errorf("%d heartbeats within %s, want them %s apart", n, span, heartbeat)
		}
		// Generous for a loaded machine, but far below the 15s default.
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%d heartbeats took %s at a %s interval", n, took, heartbeat)
		}
	})

	t.Run("notification event", func(t *testing.T) {
		msg := "line one\nline two\r\nline three\r\u2028 </script>"
		id := s.publish(t, map[string]any{
			"message": msg, "targetUserId": "user-1", "targetRoles": []string{"AUDIT"},
			"module": "orders", "actionType": "new_order", "details": "more\ntext", "severity": "critical",
			"data": map[string]any{"orderId": 42, "nested": map[string]any{"list": []any{1, "two", nil}}},
		})
		seq := s.waitPublished(t, id)[0]
		ev := rs.nextOfType(t, "notification", 10*time.Second)
		seen = append(seen, ev)
		want := "id: " + strconv.FormatInt(seq, 10) + "\n"
		if !strings.HasPrefix(ev.raw, want+"data: {") || len(ev.lines) != 2 {
			t.Fatalf("notification event %q, want exactly %q then one data line", ev.raw, want)
		}
		m := ev.msg
		if m.NotificationID != id {
			t.Errorf("notificationId %q, want %q", m.NotificationID, id)
		}
		if d := time.Since(time.UnixMilli(m.Timestamp)); d < -time.Minute || d > time.Minute {
			t.Errorf("timestamp %d is %s from now", m.Timestamp, d)
		}
		d := dataMap(t, m)
		if keys := slices.Sorted(maps.Keys(d)); !slices.Equal(keys, notificationKeys) {
			t.Errorf("data keys %q, want %q", keys, notificationKeys)
		}
		wantData := map[string]any{
			"id": id, "seq": float64(seq), "message": msg, "severity": "critical", "module": "orders",
			"actionType": "new_order", "details": "more\ntext", "targetUserId": "user-1",
			"targetRoles": []any{"AUDIT"},
			"data":        map[string]any{"orderId": float64(42), "nested": map[string]any{"list": []any{float64(1), "two", nil}}},
		}
		for k, v := range wantData {
			if !reflect.DeepEqual(d[k], v) {
				t.Errorf("data.%s = %#v, want %#v", k, d[k], v)
			}
		}
		created, err := time.Parse(time.RFC3339Nano, d["createdAt"].(string))
		if err != nil || time.Since(created) > time.Minute {
			t.Errorf("data.createdAt %v: %v", d["createdAt"], err)
		}
	})

	t.Run("minimal notification", func(t *testing.T) {
		id := s.publish(t, map[string]any{"message": "bare"})
		ev := rs.nextOfType(t, "notification", 10*time.Second)
		seen = append(seen, ev)
		if ev.msg.NotificationID != id {
			t.Fatalf("got %q, want notification %s", ev.raw, id)
		}
		d := dataMap(t, ev.msg)
		if keys := slices.Sorted(maps.Keys(d)); !slices.Equal(keys, notificationKeys) {
			t.Errorf("data keys %q, want %q", keys, notificationKeys)
		}
		for _, k := range []string{"module", "actionType", "details", "targetUserId", "targetRoles"} {
			if d[k] != nil {
				t.Errorf("data.%s = %v, want null", k, d[k])
			}
		}
		if got, _ := json.Marshal(d["data"]); string(got) != "{}" || d["severity"] != "medium" {
			t.Errorf("data.data = %s, severity %v; want {} and medium", got, d["severity"])
		}
	})

	t.Run("every event", func(t *testing.T) {
		if len(seen) < 5 {
			t.Skip("earlier subtests failed")
		}
		for _, ev := range rs.log {
			checkWireEvent(t, ev)
			if ev.msg.Type == "notification" {
				if _, err := strconv.ParseInt(ev.id, 10, 64); err != nil {
					t.Errorf("notification id %q is not a seq", ev.id)
				}
			}
		}
	})
}
