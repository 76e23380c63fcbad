package stream

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
)

// Message is the JSON of every event's data line, the original design's
// NotificationMessage.
type Message struct {
	Type           string `json:"type"`
	UserID         string `json:"userId,omitempty"`
	UserRole       string `json:"userRole,omitempty"`
	Data           any    `json:"data,omitempty"`
	Timestamp      int64  `json:"timestamp"`
	NotificationID string `json:"notificationId,omitempty"`
}

// NotificationData is the data of a notification message.
type NotificationData struct {
	ID           string          `json:"id"`
	Seq          int64           `json:"seq"`
	Message      string          `json:"message"`
	Severity     notify.Severity `json:"severity"`
	Module       *string         `json:"module"`
	ActionType   *string         `json:"actionType"`
	Details      *string         `json:"details"`
	Data         json.RawMessage `json:"data"`
	TargetUserID *string         `json:"targetUserId"`
	TargetRoles  []string        `json:"targetRoles"`
	CreatedAt    time.Time       `json:"createdAt"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// DataOf is the client-facing form of a notification.
func DataOf(n notify.Notification) NotificationData {
	data := n.Data
	switch {
	case len(data) == 0:
		data = json.RawMessage(`{}`)
	case !json.Valid(data): // cannot come from jsonb; keep the event well formed anyway
		data = json.RawMessage(`{"error":"unencodable data"}`)
	}
	return NotificationData{ID: n.ID, Seq: n.Seq, Message: n.Message, Severity: n.Severity,
		Module: optional(n.Module), ActionType: optional(n.ActionType), Details: optional(n.Details),
		Data: data, TargetUserID: optional(n.Target.UserID), TargetRoles: n.Target.Roles, CreatedAt: n.CreatedAt}
}

// NotificationFrame serializes a published notification as an SSE event with
// its seq as the event id. It is built once per notification and shared by
// every stream that receives it.
func NotificationFrame(n notify.Notification) hub.Frame {
	ts := n.PublishedAt
	if ts.IsZero() {
		ts = n.CreatedAt
	}
	return hub.Frame{Seq: n.Seq, Created: n.CreatedAt.UnixNano(), Data: encode(n.Seq, Message{Type: "notification",
		Data: DataOf(n), Timestamp: ts.UnixMilli(), NotificationID: n.ID})}
}

// MessageFrame serializes a message that carries no event id.
func MessageFrame(m Message) hub.Frame { return hub.Frame{Data: encode(0, m)} }

// HeartbeatFrame is the heartbeat at t.
func HeartbeatFrame(t time.Time) hub.Frame {
	return MessageFrame(Message{Type: "heartbeat", Timestamp: t.UnixMilli()})
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

// retryLine tells EventSource how long to wait before reconnecting. It is
// one field, written as the first line of the event that follows it (the
// connected message, a closing status), never as a block of its own: some
// SSE libraries dispatch a lone "retry:" block as an empty event.
func retryLine(d time.Duration) []byte {
	return []byte("retry: " + strconv.FormatInt(d.Milliseconds(), 10) + "\n")
}
