package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
	"github.com/notifyd/notifyd/internal/worker"
)

// cli runs notifyd commands against one test database.
type cli struct {
	t  *testing.T
	db *pgtest.DB
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	return &cli{t: t, db: pgtest.New(t)}
}

func (c *cli) env() func(string) string {
	return envOf(map[string]string{"DATABASE_URL": c.db.URL, "NOTIFY_LOG_LEVEL": "warn"})
}

// run runs a command and returns its stdout, stderr and error.
func (c *cli) run(args ...string) (string, string, error) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, c.env(), &out, &errOut)
	return out.String(), errOut.String(), err
}

// must runs a command that has to succeed and returns its stdout.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("notifyd %q: %v\nstderr:\n%s", args, err, errOut)
	}
	return out
}

// count runs a one-number query.
func (c *cli) count(query string, args ...any) int64 {
	c.t.Helper()
	var n int64
	if err := c.db.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		c.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (c *cli) exec(query string, args ...any) {
	c.t.Helper()
	if _, err := c.db.Pool.Exec(context.Background(), query, args...); err != nil {
		c.t.Fatalf("%s: %v", query, err)
	}
}

// startWorker runs a queue worker on the test database until the test ends.
func (c *cli) startWorker() {
	c.t.Helper()
	w, err := worker.New(postgres.NewQueue(c.db.Pool), worker.Config{PollInterval: 20 * time.Millisecond, Logger: apptest.TestLogger(c.t)})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
}

// background runs a command in a goroutine; wait returns its error.
type background struct {
	out, errOut *syncBuffer
	done        chan error
	cancel      context.CancelFunc
	once        sync.Once
	err         error
}

func startCommand(t *testing.T, env func(string) string, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{out: &syncBuffer{}, errOut: &syncBuffer{}, done: make(chan error, 1), cancel: cancel}
	go func() { b.done <- Run(ctx, args, env, b.out, b.errOut) }()
	t.Cleanup(func() { cancel(); b.wait(t, 20*time.Second) })
	return b
}

// wait returns the command's error, failing the test if it does not end.
func (b *background) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	b.once.Do(func() {
		select {
		case b.err = <-b.done:
		case <-time.After(timeout):
			b.cancel()
			t.Fatalf("command did not finish within %s\nstdout:\n%s\nstderr:\n%s", timeout, b.out.String(), b.errOut.String())
		}
	})
	return b.err
}

// finished reports whether the command has returned (without waiting).
func (b *background) finished() bool {
	select {
	case err := <-b.done:
		b.done <- err
		return true
	default:
		return false
	}
}
