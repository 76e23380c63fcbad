package localdb

import (
	"errors"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://u:pw@h:5432/db", "postgres://u:xxxxx@h:5432/db"},
		{"postgres://u@h/db?sslmode=disable", "postgres://u@h/db?sslmode=disable"},
		{"postgres://u@h/db?password=pw", "postgres://u@h/db?password=xxxxx"},
		{"host=h password=pw user=u", "host=h password=xxxxx user=u"},
		{"host=h password='p w' user=u", "host=h password=xxxxx user=u"},
		{"host=h user=u", "host=h user=u"},
		{"postgres://u:p@w@h:bad/db", "postgres://u:xxxxx@h:bad/db"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactKeepsCause(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	err := redact(errors.Join(errors.New("secretpw rejected"), cause), "postgres://u:secretpw@h/db")
	if strings.Contains(err.Error(), "secretpw") {
		t.Errorf("error text still holds the password: %v", err)
	}
	if !errors.Is(err, cause) {
		t.Error("redacted error no longer wraps its cause")
	}
}
