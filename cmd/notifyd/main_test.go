package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
	"github.com/notifyd/notifyd/migrations"
)

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestMigrateUpDownStatus(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	db := pgtest.New(t)
	env := envOf(map[string]string{"DATABASE_URL": db.URL})
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := Run(context.Background(), args, env, &out, &errOut); err != nil {
			t.Fatalf("notifyd %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	st := run("migrate", "status")
	versions := regexp.MustCompile(`(?m)^(\d{5})\s+applied`).FindAllStringSubmatch(st, -1)
	if len(versions) != len(files) || strings.Contains(st, "pending") {
		t.Fatalf("status after template migration:\n%s", st)
	}
	latest := versions[len(versions)-1][1]
	if got := run("migrate", "down"); !strings.Contains(got, "rolled back "+latest) {
		t.Errorf("down: %s", got)
	}
	if got := run("migrate", "status"); !regexp.MustCompile(latest + `\s+pending`).MatchString(got) {
		t.Errorf("status after down:\n%s", got)
	}
	for range len(versions) - 1 { // all the way down
		run("migrate", "down")
	}
	var exists bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'notify')`).Scan(&exists); err != nil || exists {
		t.Errorf("schema notify still exists after rolling everything back (err %v)", err)
	}
	if got := run("migrate", "up"); strings.Count(got, "applied ") != len(versions) {
		t.Errorf("up applied:\n%s", got)
	}
	if got := run("migrate", "up"); !strings.Contains(got, "nothing to apply") {
		t.Errorf("second up: %s", got)
	}
}

func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		{"bad duration in env", []string{"serve"}, map[string]string{"NOTIFY_HEARTBEAT_INTERVAL": "soon"}, "NOTIFY_HEARTBEAT_INTERVAL"},
		{"bad integer in env", []string{"serve"}, map[string]string{"NOTIFY_MAX_ATTEMPTS": "three"}, "NOTIFY_MAX_ATTEMPTS"},
		{"bad bool in env", []string{"serve"}, map[string]string{"NOTIFY_DEV_AUTH": "perhaps"}, "NOTIFY_DEV_AUTH"},
		{"unknown flag", []string{"serve", "--frob"}, nil, "flag provided but not defined"},
		{"migrate without verb", []string{"migrate"}, nil, "exactly one of up, down, status"},
		{"serve with an argument", []string{"serve", "now"}, nil, `unexpected argument "now"`},
		{"dev-token without sub", []string{"dev-token"}, nil, "needs --sub"},
		{"bad log format", []string{"migrate", "status", "--log-format", "xml"}, nil, `log format "xml"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := Run(context.Background(), tc.args, envOf(tc.env), &out, &errOut)
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

func TestServeRefusesDevAuthOffLoopback(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	err := Run(context.Background(), []string{"serve", "--addr", "0.0.0.0:0"},
		envOf(map[string]string{"DATABASE_URL": db.URL, "NOTIFY_DEV_AUTH": "1"}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("got %v, want a refusal naming the loopback rule", err)
	}
}

func TestServeRequiresAnIssuer(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	err := Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"},
		envOf(map[string]string{"DATABASE_URL": db.URL}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "OIDC_ISSUER_URL") {
		t.Fatalf("got %v, want an error naming OIDC_ISSUER_URL", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeWithDevTokenEndToEnd runs the binary's own code path: serve with
// development sign-in, a token from `dev-token` (verified through go-oidc
// against the server's own discovery and JWKS), a stream, an SQL insert,
// and a clean stop on cancellation.
func TestServeWithDevTokenEndToEnd(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	db := pgtest.New(t)
	env := envOf(map[string]string{"DATABASE_URL": db.URL, "NOTIFY_DEV_AUTH": "true", "NOTIFY_ADDR": "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, nil, env, io.Discard, logs) }()

	addrRE := regexp.MustCompile(`notifyd listening" addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == "" && time.Now().Before(deadline); {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if addr == "" {
		t.Fatalf("server did not start:\n%s", logs.String())
	}
	var tok bytes.Buffer
	tokEnv := envOf(map[string]string{"DATABASE_URL": db.URL, "NOTIFY_ADDR": addr})
	if err := Run(context.Background(), []string{"dev-token", "--sub", "alice", "--roles", "ADMIN,USER"}, tokEnv, &tok, io.Discard); err != nil {
		t.Fatalf("dev-token: %v", err)
	}
	r := apptest.Open(t, "http://"+addr, strings.TrimSpace(tok.String()), "")
	if m, ok := r.NextOfType("connected", 10*time.Second); !ok || m.UserID != "alice" {
		t.Fatalf("connected message %+v", m)
	}
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message, target_roles) VALUES ('hi users', '{USER}')`); err != nil {
		t.Fatal(err)
	}
	if got := r.Notifications(1, 10*time.Second)[0].Notification().Message; got != "hi users" {
		t.Errorf("got %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after cancellation")
	}
	if !r.Ended(5 * time.Second) {
		t.Error("stream still open after shutdown")
	}
}

// TestMigrateUpSetsMaxAttempts: the attempt limit of new queue items is one
// setting for every node, changed on purpose by migrate up (a starting
// server never rewrites it).
func TestMigrateUpSetsMaxAttempts(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	var out, errOut bytes.Buffer
	env := envOf(map[string]string{"DATABASE_URL": db.URL, "NOTIFY_MAX_ATTEMPTS": "5"})
	if err := Run(t.Context(), []string{"migrate", "up"}, env, &out, &errOut); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "max attempts of new queue items: 5") {
		t.Errorf("migrate up said:\n%s", out.String())
	}
	pgtest.Exec(t, t.Context(), db.Pool, `INSERT INTO notify.notifications (message) VALUES ('x')`)
	if n := pgtest.Scalar[int](t, t.Context(), db.Pool, `SELECT max_attempts FROM notify.queue_items`); n != 5 {
		t.Errorf("a new item's max_attempts: %d, want 5", n)
	}
	err := Run(t.Context(), []string{"migrate", "up", "--max-attempts", "101"}, envOf(map[string]string{"DATABASE_URL": db.URL}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "NOTIFY_MAX_ATTEMPTS") {
		t.Errorf("migrate up --max-attempts 101: %v, want an error naming NOTIFY_MAX_ATTEMPTS", err)
	}
}
