package wire

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
)

// NotificationEvent is a published notification as an SSE event, with its
// seq as the event id. The feed encodes it once per notification, and every
// stream that receives it writes the same bytes.
func NotificationEvent(n notify.Notification) []byte {
	ts := n.PublishedAt
	if ts.IsZero() {
		ts = n.CreatedAt
	}
	return encode(n.Seq, Message{Type: TypeNotification, Data: NotificationOf(n), Timestamp: ts.UnixMilli(), NotificationID: n.ID})
}

// MessageEvent is a message that carries no event id (connected, status,
// heartbeat) as an SSE event.
func MessageEvent(m Message) []byte { return encode(0, m) }

// StatusEvent is a status message at t as an SSE event.
func StatusEvent(t time.Time, s Status) []byte {
	return MessageEvent(Message{Type: TypeStatus, Timestamp: t.UnixMilli(), Data: s})
}

// HeartbeatEvent is the heartbeat at t.
func HeartbeatEvent(t time.Time) []byte {
	return MessageEvent(Message{Type: TypeHeartbeat, Timestamp: t.UnixMilli()})
}

// encode writes one SSE event: an optional id line and one data line. JSON
// escapes newlines, so the data is always a single line.
func encode(seq int64, m Message) []byte {
	body, err := json.Marshal(m)
	if err != nil { // only json.RawMessage can fail, and it came from jsonb
		body = []byte(`{"type":"status","data":{"error":"unencodable event"},"timestamp":` + strconv.FormatInt(m.Timestamp, 10) + `}`)
		seq = 0 // only notifications carry an id
	}
	b := make([]byte, 0, len(body)+32)
	if seq > 0 {
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, seq, 10)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, body...)
	return append(b, '\n', '\n')
}

// RetryField tells EventSource how long to wait before reconnecting. It is
// one field, written as the first line of the event that follows it (the
// connected message, a closing status), never as a block of its own: some
// SSE libraries dispatch a lone "retry:" block as an empty event.
func RetryField(d time.Duration) []byte {
	return []byte("retry: " + strconv.FormatInt(d.Milliseconds(), 10) + "\n")
}
