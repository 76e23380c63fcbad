package listener_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/notifyd/notifyd/internal/listener"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgbouncertest"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// run starts a listener on url with a handler for "ping" until the test ends.
func run(t *testing.T, url string) (*listener.Listener, <-chan string) {
	t.Helper()
	got := make(chan string, 10)
	lis, err := listener.New(listener.Config{URL: url, ProbeTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	lis.Handle("ping", func(payload string) { got <- payload })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = lis.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis, got
}

func waitStatus(t *testing.T, lis *listener.Listener, want listener.Status) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for lis.Status() != want {
		if time.Now().After(deadline) {
			t.Fatalf("listener status %+v, want %+v", lis.Status(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDirectListenerHears: on a direct connection the test notification
// comes back, and notifications published by others are dispatched.
func TestDirectListenerHears(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	db := pgtest.New(t)
	lis, got := run(t, db.URL)
	waitStatus(t, lis, listener.Status{Connected: true})
	ctx := context.Background()
	pgtest.Exec(t, ctx, db.Pool, "SELECT pg_notify('ping', 'hello')")
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("notification never dispatched")
	}
	time.Sleep(3 * time.Second) // past the probe's timeout: still hearing
	if st := lis.Status(); st != (listener.Status{Connected: true}) {
		t.Fatalf("status after the probe: %+v", st)
	}
}

// TestListenerThroughTransactionPoolerIsDeaf: through PgBouncer in
// transaction mode LISTEN succeeds but hears nothing; the listener says so
// (Deaf) and names the pooler (Pooled).
func TestListenerThroughTransactionPoolerIsDeaf(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	db := pgtest.New(t)
	b := pgbouncertest.Start(t)
	lis, _ := run(t, b.URL(db.Name))
	waitStatus(t, lis, listener.Status{Connected: true, Deaf: true, Pooled: true})
}

// TestHandlerReadsOnTheListenersConnection: a HandleOnConn handler may
// query the listener's connection between notifications, and the
// connection goes on listening afterwards.
func TestHandlerReadsOnTheListenersConnection(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	lis, err := listener.New(listener.Config{URL: db.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		payload, read string
		err           error
	}
	got := make(chan answer, 10)
	lis.HandleOnConn("ping", func(ctx context.Context, conn *pgx.Conn, payload string) {
		var a answer
		a.payload = payload
		a.err = conn.QueryRow(ctx, `SELECT $1::text || ' read back'`, payload).Scan(&a.read)
		got <- a
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = lis.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitStatus(t, lis, listener.Status{Connected: true})
	for _, p := range []string{"one", "two"} {
		pgtest.Exec(t, ctx, db.Pool, "SELECT pg_notify('ping', $1)", p)
		select {
		case a := <-got:
			if a.err != nil || a.payload != p || a.read != p+" read back" {
				t.Fatalf("handler got %q, read %q, %v; want %q read back on the connection", a.payload, a.read, a.err, p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("notification %q never dispatched", p)
		}
	}
}
