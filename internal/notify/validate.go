package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on what one notification may carry. They keep a single event well
// under what a browser or a proxy handles comfortably, and they are checked
// before anything is written. The database holds SQL producers to the same
// numbers (constraints in migrations/00001_initial.sql).
const (
	MaxMessageBytes   = 4 << 10
	MaxDetailsBytes   = 16 << 10
	MaxLabelBytes     = 200 // module, action type, user id, each role, idempotency key
	MaxTargetRoles    = 64
	MaxDataBytes      = 32 << 10
	DefaultTestModule = "test"
)

// Validate checks a notification about to be created and returns an error
// wrapping ErrInvalid that names the field at fault.
func (n Notification) Validate() error {
	if strings.TrimSpace(n.Message) == "" {
		return fmt.Errorf("%w: message is required", ErrInvalid)
	}
	if n.Severity != "" && !n.Severity.Valid() {
		return fmt.Errorf("%w: severity must be one of low, medium, high, critical", ErrInvalid)
	}
	texts := []struct {
		name  string
		value string
		max   int
	}{
		{"message", n.Message, MaxMessageBytes},
		{"details", n.Details, MaxDetailsBytes},
		{"module", n.Module, MaxLabelBytes},
		{"actionType", n.ActionType, MaxLabelBytes},
		{"targetUserId", n.Target.UserID, MaxLabelBytes},
		{"idempotencyKey", n.IdempotencyKey, MaxLabelBytes},
	}
	for _, t := range texts {
		if err := checkText(t.name, t.value, t.max); err != nil {
			return err
		}
	}
	if n.Target.UserID != "" && strings.TrimSpace(n.Target.UserID) == "" {
		return fmt.Errorf("%w: targetUserId is blank (leave it out to target no user)", ErrInvalid)
	}
	if len(n.Target.Roles) > MaxTargetRoles {
		return fmt.Errorf("%w: targetRoles has %d roles, at most %d are allowed", ErrInvalid, len(n.Target.Roles), MaxTargetRoles)
	}
	for i, r := range n.Target.Roles {
		if strings.TrimSpace(r) == "" {
			return fmt.Errorf("%w: targetRoles[%d] is empty", ErrInvalid, i)
		}
		if err := checkText(fmt.Sprintf("targetRoles[%d]", i), r, MaxLabelBytes); err != nil {
			return err
		}
	}
	return checkData(n.Data)
}

func checkText(name, value string, max int) error {
	switch {
	case len(value) > max:
		return fmt.Errorf("%w: %s is %d bytes, at most %d are allowed", ErrInvalid, name, len(value), max)
	case !utf8.ValidString(value):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, name)
	case strings.ContainsRune(value, 0):
		return fmt.Errorf("%w: %s contains a NUL character", ErrInvalid, name)
	}
	return nil
}

// checkData accepts a JSON object (or nothing). PostgreSQL's jsonb refuses
// \u0000 in strings, so it is refused here with a clear message instead.
func checkData(data json.RawMessage) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	if len(trimmed) > MaxDataBytes {
		return fmt.Errorf("%w: data is %d bytes, at most %d are allowed", ErrInvalid, len(trimmed), MaxDataBytes)
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return fmt.Errorf("%w: data must be a JSON object", ErrInvalid)
	}
	if !utf8.Valid(trimmed) {
		return fmt.Errorf("%w: data is not valid UTF-8", ErrInvalid)
	}
	if escapesNUL(trimmed) {
		return fmt.Errorf("%w: data contains a NUL character (\\u0000)", ErrInvalid)
	}
	return nil
}

// escapesNUL reports whether the valid JSON b holds the escape \u0000. An
// escaped backslash followed by "u0000" (the text \u0000) is not one.
func escapesNUL(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if bytes.HasPrefix(b[i+1:], []byte("u0000")) {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}
