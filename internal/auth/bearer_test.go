package auth_test

import (
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/auth"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
	tests := []struct {
		header string
		want   string // "" means refused
	}{
		{"Bearer " + jwt, jwt},
		{"bearer " + jwt, jwt},
		{"BEARER " + jwt, jwt},
		{"  Bearer   " + jwt + "  ", jwt},
		{"Bearer abc+/~-_.==", "abc+/~-_.=="},
		{"", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Bearer    ", ""},
		{"Basic dXNlcjpwYXNz", ""},
		{"Bearerabc", ""},
		{"Token " + jwt, ""},
		{"Bearer a b", ""},
		{"Bearer ===", ""},
		{"Bearer a=b", ""},
		{"Bearer <script>", ""},
		{"Bearer " + strings.Repeat("a", 16<<10), ""},
	}
	for _, tt := range tests {
		got, ok := auth.BearerToken(tt.header)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("BearerToken(%.40q) = %q, %v; want %q", tt.header, got, ok, tt.want)
		}
	}
}
