// Package notify holds the domain of notifyd: what a notification is, whom it
// targets, who is asking, and the errors every other package speaks in.
//
// It depends on nothing but the standard library, so the database, the fan-out
// hub, the HTTP layer and the identity provider can all agree on these types
// without depending on each other.
package notify

import (
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Severity is how urgent a notification is. The database enforces the same
// four values with a check constraint.
type Severity string

// The severities, from least to most urgent.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Valid reports whether s is one of the four severities.
func (s Severity) Valid() bool {
	switch s {
	case SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
		return true
	}
	return false
}

// Target says who receives a notification. Both fields empty: every signed-in
// user. Both set: the user, and everyone holding one of the roles.
type Target struct {
	UserID string
	Roles  []string
}

// Everyone reports whether the target is a broadcast to every signed-in user.
func (t Target) Everyone() bool { return t.UserID == "" && len(t.Roles) == 0 }

// Matches reports whether the identity is one of the notification's
// recipients. It is the single definition of targeting: the live fan-out and
// the SQL replay (postgres.replayQuery) must agree with it.
func (t Target) Matches(id Identity) bool {
	if t.Everyone() {
		return true
	}
	if t.UserID != "" && t.UserID == id.UserID {
		return true
	}
	for _, r := range t.Roles {
		if slices.Contains(id.Roles, r) {
			return true
		}
	}
	return false
}

// Notification is one row of notify.notifications. Seq is zero until the
// worker publishes it; from then on it is the notification's position in the
// stream and its SSE event id.
type Notification struct {
	ID             string
	Seq            int64
	Target         Target
	Module         string
	ActionType     string
	Details        string
	Message        string
	Severity       Severity
	Data           json.RawMessage
	IdempotencyKey string
	CreatedAt      time.Time
	PublishedAt    time.Time
	// CollapseKey: a newer notification with the same key and targets
	// supersedes this one in history and counts (the stream still delivers
	// both). Empty: none.
	CollapseKey string
	// ExpiresAt: after it the notification is not delivered, replayed,
	// listed or counted. Zero: never.
	ExpiresAt time.Time
	// Actions are the buttons shown with it (at most MaxActions).
	Actions []Action
}

// Expired reports whether n's ExpiresAt has passed at now.
func (n Notification) Expired(now time.Time) bool {
	return !n.ExpiresAt.IsZero() && !now.Before(n.ExpiresAt)
}

// Action is a button shown with a notification; a click is recorded as the
// user's interaction (POST /api/notifications/{id}/interact) and, with a
// URL, follows it.
type Action struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	URL   string `json:"url,omitempty"`
}

// Identity is an authenticated caller: the token's subject, its roles and when
// its credentials stop being valid.
type Identity struct {
	UserID    string
	Roles     []string
	ExpiresAt time.Time
	// SessionID is set when the caller signed in through the browser flow
	// (cookie); empty for bearer tokens.
	SessionID string
}

// HasAnyRole reports whether the identity holds at least one of roles.
func (id Identity) HasAnyRole(roles []string) bool {
	for _, r := range roles {
		if slices.Contains(id.Roles, r) {
			return true
		}
	}
	return false
}

// Sentinel errors. Packages at the edges translate their own failures into
// these, and the HTTP layer maps them to status codes.
var (
	// ErrNotFound: the thing asked for does not exist or is not the caller's to see.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the input breaks a rule; wrap it with what is wrong.
	ErrInvalid = errors.New("invalid input")
	// ErrUnauthenticated: no credentials, or credentials that do not verify.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the caller is known but not allowed to do this.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: an idempotency key was reused for a different notification.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a dependency (the database, the issuer) cannot be reached now.
	ErrUnavailable = errors.New("unavailable")
)
