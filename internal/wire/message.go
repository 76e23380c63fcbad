package wire

import (
	"encoding/json"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
)

// The message types (Message.Type).
const (
	TypeConnected    = "connected"
	TypeNotification = "notification"
	TypeHeartbeat    = "heartbeat"
	TypeStatus       = "status"
)

// Message is the JSON of every event's data line, the original design's
// NotificationMessage. The server sets Data to a Notification, Connected or
// Status; a client reads it as a Received, which leaves Data to decode by
// type.
type Message struct {
	Type           string `json:"type"`
	UserID         string `json:"userId,omitempty"`
	UserRole       string `json:"userRole,omitempty"`
	Data           any    `json:"data,omitempty"`
	Timestamp      int64  `json:"timestamp"`
	NotificationID string `json:"notificationId,omitempty"`
}

// Notification is the data of a notification message, and the form every
// HTTP answer gives a notification in (history, create-and-notify). Its
// absent optional fields are null, never left out, except the inbox's
// (collapseKey, expiresAt, actions), which came later and are left out
// when unset so that older events keep their bytes.
type Notification struct {
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
	CollapseKey  string          `json:"collapseKey,omitempty"`
	ExpiresAt    *time.Time      `json:"expiresAt,omitempty"`
	Actions      []notify.Action `json:"actions,omitempty"`
}

// NotificationOf is the client-facing form of a notification.
func NotificationOf(n notify.Notification) Notification {
	data := n.Data
	switch {
	case len(data) == 0:
		data = json.RawMessage(`{}`)
	case !json.Valid(data): // cannot come from jsonb; keep the event well formed anyway
		data = json.RawMessage(`{"error":"unencodable data"}`)
	}
	return Notification{ID: n.ID, Seq: n.Seq, Message: n.Message, Severity: n.Severity,
		Module: optional(n.Module), ActionType: optional(n.ActionType), Details: optional(n.Details),
		Data: data, TargetUserID: optional(n.Target.UserID), TargetRoles: n.Target.Roles, CreatedAt: n.CreatedAt,
		CollapseKey: n.CollapseKey, ExpiresAt: optionalTime(n.ExpiresAt), Actions: n.Actions}
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
