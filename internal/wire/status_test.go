package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/wire"
)

// TestDataEncodesAsTheMapsDid: the connected and status messages' data, as
// types, write the same bytes the server wrote when it built them as maps
// (which encoding/json writes with sorted keys): present keys, nulls and
// zeros included.
func TestDataEncodesAsTheMapsDid(t *testing.T) {
	for _, tc := range []struct {
		name string
		data any
		was  map[string]any
	}{
		{"connected, no inbox, live", wire.Connected{ConnectionID: 7, Roles: []string{"OPS"}, HeartbeatInterval: 25000},
			map[string]any{"connectionId": uint64(7), "roles": []string{"OPS"}, "resumeFrom": nil, "heartbeatInterval": int64(25000)}},
		{"connected, unread count, resumed from 0",
			wire.Connected{ConnectionID: 7, ResumeFrom: new(int64(0)), HeartbeatInterval: 1, UnreadCount: &wire.Count{N: 0, Known: true}, HasMore: new(false)},
			map[string]any{"connectionId": uint64(7), "roles": []string(nil), "resumeFrom": int64(0), "heartbeatInterval": int64(1),
				"unreadCount": 0, "hasMore": false}},
		{"connected, unread count unknown", wire.Connected{ConnectionID: 1, UnreadCount: &wire.Count{}},
			map[string]any{"connectionId": uint64(1), "roles": []string(nil), "resumeFrom": nil, "heartbeatInterval": int64(0), "unreadCount": nil}},
		{"lost while live", wire.Status{Replay: wire.ReplayLost, Live: true, LastSeq: new(int64(0)), NextSeq: new(int64(5))},
			map[string]any{"replay": "lost", "live": true, "lastSeq": int64(0), "nextSeq": int64(5)}},
		{"lost on resume", wire.Status{Replay: wire.ReplayLost, ResumeFrom: new(int64(9)), LastSeq: new(int64(3)), NextSeq: new(int64(5))},
			map[string]any{"replay": "lost", "resumeFrom": int64(9), "lastSeq": int64(3), "nextSeq": int64(5)}},
		{"truncated", wire.Status{Replay: wire.ReplayTruncated, ResumeFrom: new(int64(0)), OldestAvailable: new(int64(11))},
			map[string]any{"replay": "truncated", "resumeFrom": int64(0), "oldestAvailable": int64(11)}},
		{"ahead", wire.Status{Replay: wire.ReplayAhead, ResumeFrom: new(int64(99)), LastSeq: new(int64(0))},
			map[string]any{"replay": "ahead", "resumeFrom": int64(99), "lastSeq": int64(0)}},
		{"unread count", wire.Status{UnreadCount: new(0), HasMore: new(false), CountedThrough: new(int64(0))},
			map[string]any{"unreadCount": 0, "hasMore": false, "countedThrough": int64(0)}},
		{"read elsewhere", wire.Status{UnreadCount: new(3), HasMore: new(true), CountedThrough: new(int64(8)),
			Change: &wire.Change{Action: "read", NotificationID: "n1", Seq: 8}},
			map[string]any{"unreadCount": 3, "hasMore": true, "countedThrough": int64(8),
				"change": map[string]any{"action": "read", "notificationId": "n1", "seq": int64(8)}}},
		{"read-all elsewhere", wire.Status{UnreadCount: new(0), HasMore: new(false), CountedThrough: new(int64(8)),
			Change: &wire.Change{Action: "read-all"}},
			map[string]any{"unreadCount": 0, "hasMore": false, "countedThrough": int64(8), "change": map[string]any{"action": "read-all"}}},
		{"closing", wire.Status{Closing: "slow", Message: "behind"}, map[string]any{"closing": "slow", "message": "behind"}},
		{"closing on shutdown", wire.Status{Closing: "shutdown", Message: "bye", ReconnectAfter: new(int64(0))},
			map[string]any{"closing": "shutdown", "message": "bye", "reconnectAfter": int64(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(tc.was)
			if string(got) != string(want) {
				t.Errorf("wrote %s\nwant  %s", got, want)
			}
		})
	}
}

// TestDecodeReadsWhatIsWritten: a client decodes each message back.
func TestDecodeReadsWhatIsWritten(t *testing.T) {
	ev := func(b []byte) wire.Event {
		t.Helper()
		s := string(b)
		if len(s) < 8 || s[:6] != "data: " || s[len(s)-2:] != "\n\n" {
			t.Fatalf("event %q", b)
		}
		return wire.Event{Data: []byte(s[6 : len(s)-2])}
	}
	m, err := wire.Decode(ev(wire.StatusEvent(time.UnixMilli(5), wire.Status{Closing: "logout", ReconnectAfter: new(int64(0))})))
	if err != nil || m.Type != wire.TypeStatus || m.Timestamp != 5 {
		t.Fatalf("decoded %+v, %v", m, err)
	}
	st, err := m.Status()
	if err != nil || st.Closing != "logout" || st.ReconnectAfter == nil || *st.ReconnectAfter != 0 || st.UnreadCount != nil {
		t.Errorf("status %+v, %v", st, err)
	}
	m, _ = wire.Decode(ev(wire.MessageEvent(wire.Message{Type: wire.TypeConnected, UserID: "u",
		Data: wire.Connected{HeartbeatInterval: 30, UnreadCount: &wire.Count{N: 4, Known: true}}})))
	c, err := m.Connected()
	if err != nil || m.UserID != "u" || c.HeartbeatInterval != 30 || c.UnreadCount == nil || *c.UnreadCount != (wire.Count{N: 4, Known: true}) {
		t.Errorf("connected %+v, %+v, %v", m, c, err)
	}
	if _, err := wire.Decode(wire.Event{Data: []byte(`{"type":`)}); err == nil {
		t.Error("undecodable JSON was accepted")
	}
}
