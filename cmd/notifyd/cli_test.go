package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
)

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$`)

func TestSendThenStatus(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	c := newCLI(t)
	out := c.must("send", "--message", "Order shipped", "--user", "alice", "--roles", "ADMIN, SALES",
		"--severity", "HIGH", "--module", "orders", "--action-type", "shipped", "--details", "3 boxes",
		"--data", `{"k":1}`, "--idempotency-key", "order-1")
	if !uuidLine.MatchString(out) {
		t.Fatalf("send printed %q, want the notification id", out)
	}
	id := strings.TrimSpace(out)
	var user, module, action, details, message, severity, key, data string
	var roles []string
	err := c.db.Pool.QueryRow(context.Background(), `SELECT target_user_id, target_roles, module, action_type, details,
		message, severity, data::text, idempotency_key FROM notify.notifications WHERE id = $1`, id).
		Scan(&user, &roles, &module, &action, &details, &message, &severity, &data, &key)
	if err != nil {
		t.Fatal(err)
	}
	if user != "alice" || strings.Join(roles, ",") != "ADMIN,SALES" || module != "orders" || action != "shipped" ||
		details != "3 boxes" || message != "Order shipped" || severity != "high" || data != `{"k": 1}` || key != "order-1" {
		t.Errorf("stored %q %q %q %q %q %q %q %q %q", user, roles, module, action, details, message, severity, data, key)
	}

	t.Run("a repeated idempotency key sends nothing new", func(t *testing.T) {
		out, errOut, err := c.run("send", "--message", "Order shipped", "--user", "alice", "--roles", "ADMIN,SALES",
			"--severity", "high", "--module", "orders", "--action-type", "shipped", "--idempotency-key", "order-1")
		if err != nil {
			t.Fatalf("repeat: %v\n%s", err, errOut)
		}
		if strings.TrimSpace(out) != id || !strings.Contains(errOut, "already sent") {
			t.Errorf("repeat printed %q / %q, want the same id and \"already sent\"", out, errOut)
		}
		if n := c.count(`SELECT count(*) FROM notify.notifications`); n != 1 {
			t.Errorf("%d notifications after a repeat, want 1", n)
		}
	})

	t.Run("status shows it published, with no worker running", func(t *testing.T) {
		text := c.must("status")
		for _, want := range []string{`(?m)^pending\s+0`, `(?m)^sent\s+1\s*$`, `(?m)^failed\s+0\s*$`, `last published seq: 1`} {
			if !regexp.MustCompile(want).MatchString(text) {
				t.Errorf("status does not match %s:\n%s", want, text)
			}
		}
	})

	// While another publisher holds the publish turn, send queues the
	// notification for the workers instead of waiting.
	ctx := context.Background()
	turn, err := c.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := turn.Exec(ctx, `SELECT pg_advisory_xact_lock(1852797545, 3)`); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := c.run("send", "--message", "while busy", "--user", "bob")
	if err != nil || !strings.Contains(errOut, "queued") {
		t.Fatalf("send while the turn is held: %v, %q, want it queued", err, errOut)
	}
	turn.Rollback(ctx)
	t.Run("status shows the queued one pending", func(t *testing.T) {
		text := c.must("status")
		for _, want := range []string{`(?m)^pending\s+1\s+oldest waiting \d+s$`, `(?m)^sent\s+1\s*$`, `last published seq: 1`} {
			if !regexp.MustCompile(want).MatchString(text) {
				t.Errorf("status does not match %s:\n%s", want, text)
			}
		}
	})

	c.startWorker()
	t.Run("status shows it sent once a worker ran", func(t *testing.T) {
		var r statusReport
		testkit.Eventually(t, 20*time.Second, "the notification to be sent", func() bool {
			r = statusReport{}
			if err := json.Unmarshal([]byte(c.must("status", "--json")), &r); err != nil {
				t.Fatalf("status --json: %v", err)
			}
			return r.Queue.Sent == 2
		})
		if r.Queue.Pending != 0 || r.LastSeq != 2 || r.OldestPendingAt != nil || r.Failed != 0 || len(r.TopErrors) != 0 {
			t.Errorf("status after publishing: %+v", r)
		}
		if text := c.must("status"); !regexp.MustCompile(`(?m)^sent\s+2\s*$`).MatchString(text) || !strings.Contains(text, "last published seq: 2") {
			t.Errorf("status after publishing:\n%s", text)
		}
	})

	t.Run("inbox flags", func(t *testing.T) {
		out := strings.TrimSpace(c.must("send", "--message", "4 new orders", "--user", "alice", "--collapse-key", "orders",
			"--expires-at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--actions", `[{"id":"open","label":"Open","url":"/orders"}]`))
		var key, actions string
		var expires time.Time
		if err := c.db.Pool.QueryRow(ctx, `SELECT collapse_key, expires_at, actions::text FROM notify.notifications WHERE id = $1`, out).
			Scan(&key, &expires, &actions); err != nil {
			t.Fatal(err)
		}
		if key != "orders" || time.Until(expires) < 50*time.Minute || actions != `[{"id": "open", "url": "/orders", "label": "Open"}]` {
			t.Errorf("stored %q %v %s", key, expires, actions)
		}
	})
}

func TestSendRejectsBadInput(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no message", []string{"send"}, "--message is required"},
		{"blank message", []string{"send", "--message", "  "}, "--message is required"},
		{"data that is not JSON", []string{"send", "--message", "m", "--data", "{k:1}"}, "--data is not valid JSON"},
		{"data that is not an object", []string{"send", "--message", "m", "--data", "[1,2]"}, "--data must be a JSON object"},
		{"unknown severity", []string{"send", "--message", "m", "--severity", "urgent"}, `--severity "urgent"`},
		{"oversized module", []string{"send", "--message", "m", "--module", strings.Repeat("x", 300)}, "--module is 300 bytes"},
		{"an argument", []string{"send", "--message", "m", "extra"}, `unexpected argument "extra"`},
		{"expiry that is not a time", []string{"send", "--message", "m", "--expires-at", "tomorrow"}, `--expires-at "tomorrow"`},
		{"expiry in the past", []string{"send", "--message", "m", "--expires-at", "2001-01-01T00:00:00Z"}, "is in the past"},
		{"a javascript: action", []string{"send", "--message", "m", "--actions", `[{"id":"x","label":"X","url":"javascript:alert(1)"}]`}, "--actions[0].url"},
		{"actions that are not a list", []string{"send", "--message", "m", "--actions", `{"id":"x"}`}, "--actions must be an array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := c.run(tc.args...)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if tc.name != "an argument" && !strings.Contains(err.Error(), "nothing was sent") {
				t.Errorf("error %q does not say that nothing was sent", err)
			}
		})
	}
	if n := c.count(`SELECT count(*) FROM notify.notifications`); n != 0 {
		t.Fatalf("bad input wrote %d notifications", n)
	}

	t.Run("an idempotency key reused for something else", func(t *testing.T) {
		first := strings.TrimSpace(c.must("send", "--message", "one", "--idempotency-key", "k"))
		_, _, err := c.run("send", "--message", "two", "--idempotency-key", "k")
		if err == nil || !strings.Contains(err.Error(), first) || !strings.Contains(err.Error(), "use a new key") {
			t.Fatalf("got %v, want an error naming %s and what to do", err, first)
		}
		if n := c.count(`SELECT count(*) FROM notify.notifications`); n != 1 {
			t.Errorf("%d notifications, want 1", n)
		}
	})
}

func TestCommandHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"send", "status", "retry", "tail"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			var out, errOut syncBuffer
			if err := Run(context.Background(), []string{cmd, "-h"}, envOf(nil), &out, &errOut); err != nil {
				t.Fatalf("%s -h: %v", cmd, err)
			}
			help := errOut.String()
			for _, want := range []string{"usage: notifyd " + cmd, "examples:", "env DATABASE_URL", "env NOTIFY_LOG_LEVEL"} {
				if !strings.Contains(help, want) {
					t.Errorf("%s -h lacks %q:\n%s", cmd, want, help)
				}
			}
		})
	}
	var out syncBuffer
	if err := Run(context.Background(), []string{"help"}, envOf(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"send", "status", "retry", "tail"} {
		if !strings.Contains(out.String(), "notifyd "+cmd) {
			t.Errorf("notifyd help does not list %s", cmd)
		}
	}
}

func TestAdminCommandLineErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"retry without a selector", []string{"retry"}, "pass --all"},
		{"retry with --all and a selector", []string{"retry", "--all", "--id", "3"}, "--all retries every failed item"},
		{"retry with a bad id", []string{"retry", "--id", "x7"}, "neither a queue item id"},
		{"retry with a bad time", []string{"retry", "--since", "yesterday"}, `--since "yesterday"`},
		{"tail without a source", []string{"tail"}, "tail needs a source"},
		{"tail with two sources", []string{"tail", "--db", "--url", "http://x"}, "not both"},
		{"tail --url without a token", []string{"tail", "--url", "http://127.0.0.1:1"}, "needs --token"},
		{"tail --url without a scheme", []string{"tail", "--url", "127.0.0.1:8080", "--token", "t"}, "with its scheme"},
		{"tail with a bad --from", []string{"tail", "--db", "--from", "-3"}, `--from "-3"`},
		{"status with an argument", []string{"status", "now"}, `unexpected argument "now"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut syncBuffer
			err := Run(context.Background(), tc.args, envOf(nil), &out, &errOut)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("want a usage error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
