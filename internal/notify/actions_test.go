package notify

import (
	"errors"
	"strings"
	"testing"
)

// TestDecodeActions holds the Go rule for buttons to the database's
// (notify.valid_actions; internal/app's TestInboxActions sends the same
// cases to both): what a producer may not put in front of a user.
func TestDecodeActions(t *testing.T) {
	ok := []string{
		``, `null`, `[]`,
		`[{"id":"approve","label":"Approve"}]`,
		`[{"id":"a.b:c-d_e","label":"Open","url":"https://example.com/x?y=1"},{"id":"b","label":"B","url":"/orders/7"}]`,
		`[{"id":"root","label":"Home","url":"/"}]`,
		`[{"id":"h","label":"H","url":"HTTP://EXAMPLE.COM"}]`,
	}
	for _, raw := range ok {
		if _, err := DecodeActions([]byte(raw)); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	bad := []string{
		`{"id":"a","label":"A"}`,
		`[{"id":"a","label":"A","url":"javascript:alert(1)"}]`,
		`[{"id":"a","label":"A","url":"JaVaScRiPt:alert(1)"}]`,
		`[{"id":"a","label":"A","url":"data:text/html,<script>"}]`,
		`[{"id":"a","label":"A","url":"//evil.example"}]`,
		`[{"id":"a","label":"A","url":"/\\evil.example"}]`,
		`[{"id":"a","label":"A","url":"https://"}]`,
		`[{"id":"a","label":"A","url":"https://x y"}]`,
		`[{"id":"a","label":"A","url":"orders/7"}]`,
		`[{"id":"","label":"A"}]`,
		`[{"id":"a b","label":"A"}]`,
		`[{"id":"` + strings.Repeat("x", 65) + `","label":"A"}]`,
		`[{"id":"a","label":""}]`,
		`[{"id":"a","label":"  "}]`,
		`[{"id":"a","label":"` + strings.Repeat("x", 201) + `"}]`,
		`[{"id":"a","label":"A"},{"id":"a","label":"B"}]`,
		`[{"id":"a","label":"A","style":"x"}]`,
		`[{"id":1,"label":"A"}]`,
		`["a"]`,
		`[{"id":"1","label":"1"},{"id":"2","label":"2"},{"id":"3","label":"3"},{"id":"4","label":"4"},{"id":"5","label":"5"},{"id":"6","label":"6"}]`,
	}
	for _, raw := range bad {
		if _, err := DecodeActions([]byte(raw)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", raw, err)
		}
	}
}

// TestParseActionsLeavesOutInvalidButtons: a row written while the check
// constraint was dropped shows no buttons rather than unsafe ones.
func TestParseActionsLeavesOutInvalidButtons(t *testing.T) {
	if got := ParseActions([]byte(`[{"id":"a","label":"A","url":"javascript:x"}]`)); got != nil {
		t.Errorf("unsafe actions parsed as %+v", got)
	}
	if got := ParseActions([]byte(`[{"id":"a","label":"A","url":"/x"}]`)); len(got) != 1 || got[0].URL != "/x" {
		t.Errorf("valid actions parsed as %+v", got)
	}
	if got := ParseActions(nil); got != nil {
		t.Errorf("NULL parsed as %+v", got)
	}
}
