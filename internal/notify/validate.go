package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
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
		{"collapseKey", n.CollapseKey, MaxLabelBytes},
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
	if err := ValidateActions(n.Actions); err != nil {
		return err
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

// MaxActions is how many buttons a notification may carry.
const MaxActions = 5

// actionID is what an action's id may be: it travels in URLs and logs.
var actionID = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// ValidateActions checks a notification's buttons as the database does
// (notify.valid_actions): unique ids of 1 to 64 of A-Z a-z 0-9 _ . : -,
// labels that are not blank, and URLs that are http(s) or a path on this
// site, so no producer can put a javascript: link in front of a user.
func ValidateActions(actions []Action) error {
	if len(actions) > MaxActions {
		return fmt.Errorf("%w: actions has %d buttons, at most %d are allowed", ErrInvalid, len(actions), MaxActions)
	}
	ids := make(map[string]bool, len(actions))
	for i, a := range actions {
		switch {
		case !actionID.MatchString(a.ID):
			return fmt.Errorf("%w: actions[%d].id must be 1 to 64 of A-Z a-z 0-9 _ . : -", ErrInvalid, i)
		case ids[a.ID]:
			return fmt.Errorf("%w: actions[%d].id %q is used twice", ErrInvalid, i, a.ID)
		case strings.TrimSpace(a.Label) == "":
			return fmt.Errorf("%w: actions[%d].label is required", ErrInvalid, i)
		case a.URL != "" && !SafeActionURL(a.URL):
			return fmt.Errorf("%w: actions[%d].url must be an http(s) URL or a path starting with / (at most 2048 bytes)", ErrInvalid, i)
		}
		if err := checkText(fmt.Sprintf("actions[%d].label", i), a.Label, MaxLabelBytes); err != nil {
			return err
		}
		ids[a.ID] = true
	}
	return nil
}

// SafeActionURL reports whether u may be a button's link: an absolute
// http or https URL, or a path on this site ("/orders/7", not "//evil").
func SafeActionURL(u string) bool {
	if len(u) > 2048 || strings.ContainsFunc(u, unicode.IsSpace) || !utf8.ValidString(u) {
		return false
	}
	if strings.HasPrefix(u, "/") {
		return !strings.HasPrefix(u, "//") && !strings.HasPrefix(u, `/\`)
	}
	lower := strings.ToLower(u)
	for _, scheme := range []string{"http://", "https://"} {
		if strings.HasPrefix(lower, scheme) {
			return len(u) > len(scheme)
		}
	}
	return false
}

// ParseActions reads the actions column as stored. Rows can only hold
// valid ones (the table's check constraint), but one written while the
// constraint was dropped must not reach a user: invalid buttons are left
// out, so every reader shows the same (no) buttons.
func ParseActions(raw []byte) []Action {
	if len(raw) == 0 {
		return nil
	}
	var actions []Action
	if err := json.Unmarshal(raw, &actions); err != nil || len(actions) == 0 || ValidateActions(actions) != nil {
		return nil
	}
	return actions
}

// DecodeActions reads actions as a producer sent them (JSON null or an
// array of {id, label, url?}), refusing keys a button does not have, as
// the database does, then checks them (ValidateActions).
func DecodeActions(raw json.RawMessage) ([]Action, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var actions []Action
	if err := dec.Decode(&actions); err != nil {
		return nil, fmt.Errorf("%w: actions must be an array of {\"id\", \"label\", \"url\"?}: %v", ErrInvalid, err)
	}
	return actions, ValidateActions(actions)
}
