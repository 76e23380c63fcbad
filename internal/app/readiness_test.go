package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// logBuffer collects a server's log lines for assertions and passes them
// on to t.Log.
type logBuffer struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// lines returns the lines logged so far that contain every one of parts.
func (l *logBuffer) lines(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.b.String()) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func newLogBuffer(t testing.TB) (*logBuffer, *slog.Logger) {
	lb := &logBuffer{t: t}
	return lb, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func readyBody(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadinessTellsNoSecrets: /readyz is public, so when the database
// refuses the node it says which component is failing in a few stable
// words, never the driver's error (which names the database user, host and
// database); the full error goes to the server log, once per change rather
// than once per probe.
func TestReadinessTellsNoSecrets(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	ctx := context.Background()
	// A login role of the node's own, so the database can refuse it while
	// the test's connection stays up.
	role := fmt.Sprintf("notifyd_ready_%x", rand.Uint32())
	password := fmt.Sprintf("pw-%x", rand.Uint64())
	ident := pgx.Identifier{role}.Sanitize()
	if _, err := env.DB.Pool.Exec(ctx, "CREATE ROLE "+ident+" LOGIN SUPERUSER PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the node has stopped (cleanups run last first)
		ctx := context.Background()
		_, _ = env.DB.Pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		for _, q := range []string{"REASSIGN OWNED BY " + ident + " TO CURRENT_USER", "DROP OWNED BY " + ident, "DROP ROLE " + ident} {
			if _, err := env.DB.Pool.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	host := "127.0.0.1"
	cfg := env.Config()
	cfg.DatabaseURL = fmt.Sprintf("postgres://%s:%s@%s:5432/%s?sslmode=disable", role, password, host, env.DB.Name)
	logs, log := newLogBuffer(t)
	cfg.Logger = log
	srv := env.Start(cfg)
	waitReady(t, srv.URL(), http.StatusOK, 10*time.Second)

	// The database now refuses the node's role, and drops its sessions.
	if _, err := env.DB.Pool.Exec(ctx, "ALTER ROLE "+ident+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.DB.Pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, b := readyBody(t, srv.URL())
		if code == http.StatusServiceUnavailable && strings.Contains(b, `"database"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported the database: %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// More probes while it stays down: the first ones meet the pool's dead
	// connections, the later ones the database refusing new ones.
	var bodies []string
	for range 10 {
		code, b := readyBody(t, srv.URL())
		if code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz while the database refuses: %d %s", code, b)
		}
		bodies = append(bodies, b)
	}
	for _, body := range slices.Backward(bodies) { // the last: the refusal of a new connection
		for _, secret := range []string{role, password, env.DB.Name, host, "5432", "SQLSTATE", "FATAL"} {
			if strings.Contains(body, secret) {
				t.Fatalf("/readyz tells %q: %s", secret, body)
			}
		}
		if !strings.Contains(body, `"database":"unreachable"`) {
			t.Fatalf("/readyz body %s, want the database named unreachable", body)
		}
	}
	if got := logs.lines("not ready", "component=database", "reason=unreachable", "err="); len(got) != 1 {
		t.Errorf("logged the database problem with its error %d times over several probes, want once: %q", len(got), got)
	}

	// Let the node back in: ready again, and said so once.
	if _, err := env.DB.Pool.Exec(ctx, "ALTER ROLE "+ident+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv.URL(), http.StatusOK, 15*time.Second)
	if code, b := readyBody(t, srv.URL()); code != http.StatusOK || strings.Contains(b, "problems") {
		t.Fatalf("/readyz once the database is back: %d %s", code, b)
	}
	if n := len(logs.lines("ready again", "component=database")); n != 1 {
		t.Errorf("logged the recovery %d times, want once", n)
	}
}
