package postgres_test

import (
	"testing"

	"github.com/notifyd/notifyd/internal/postgres"
)

func TestRedactDropsSecretsAndKeepsHowToConnect(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
		{"postgres://u:secret@h:6432/db", "postgres://u@h:6432/db"},
		{"postgresql://u@h/db?password=secret&sslmode=require&sslpassword=key", "postgres://u@h:5432/db?sslmode=require"},
		{"host=h port=6432 user=u password=secret dbname=db", "postgres://u@h:6432/db"},
		{"postgres://h:notaport/db", "(unparsable database url)"},
	} {
		if got := postgres.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
