package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// onePool opens a pool of one connection on the test server, so that a
// statement after another runs on the same connection unless the first
// broke it.
func onePool(t *testing.T, grace time.Duration) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.OpenPool(t.Context(), pgtest.ServerURL(), postgres.PoolConfig{MaxConns: 1, CancelGrace: grace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func backendPID(t *testing.T, pool *pgxpool.Pool) int32 {
	t.Helper()
	return pgtest.Scalar[int32](t, t.Context(), pool, `SELECT pg_backend_pid()`)
}

// sleepAndCancel runs pg_sleep(sleep) on pool under ctx, cancelled cancelAfter
// after it starts, and returns what the statement gave and how long it took
// from the cancel.
func sleepAndCancel(ctx context.Context, pool *pgxpool.Pool, sleep float64, cancelAfter time.Duration) (pid int32, sinceCancel time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cancelled := time.Now().Add(cancelAfter)
	time.AfterFunc(cancelAfter, cancel)
	err = pool.QueryRow(ctx, `SELECT pg_backend_pid() FROM pg_sleep($1)`, sleep).Scan(&pid)
	return pid, time.Since(cancelled), err
}

func TestCancelledStatementFinishesWithinTheGrace(t *testing.T) {
	t.Parallel()
	pool := onePool(t, 10*time.Second)
	before := backendPID(t, pool)
	pid, _, err := sleepAndCancel(t.Context(), pool, 0.3, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("a statement cancelled 50 ms into its 300 ms: %v; want its result (the grace is 10 s)", err)
	}
	if pid != before {
		t.Fatalf("it ran on backend %d, the pool's connection was %d", pid, before)
	}
	if after := backendPID(t, pool); after != before {
		t.Fatalf("the next statement ran on backend %d, not %d: the cancel broke the connection", after, before)
	}
	if n := pool.Stat().NewConnsCount(); n != 1 {
		t.Fatalf("the pool opened %d connections, want 1", n)
	}
}

func TestCancelledStatementIsBrokenAfterTheGrace(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	pool := onePool(t, grace)
	before := backendPID(t, pool)
	_, took, err := sleepAndCancel(t.Context(), pool, 30, 50*time.Millisecond)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a 30 s statement cancelled after 50 ms: %v; want context.Canceled", err)
	}
	if took < grace {
		t.Fatalf("it ended %s after the cancel, before the %s grace", took, grace)
	}
	if took > 10*time.Second {
		t.Fatalf("it ended %s after the cancel: the grace did not bound it", took)
	}
	if after := backendPID(t, pool); after == before {
		t.Fatalf("the next statement ran on the broken connection's backend %d", after)
	}
}

func TestDeadlineBreaksTheStatementAtOnce(t *testing.T) {
	t.Parallel()
	pool := onePool(t, time.Minute)
	for _, tc := range []struct {
		name        string
		timeout     time.Duration
		cancelAfter time.Duration // 0: never cancelled, the deadline passes
	}{
		{"deadline passed", 100 * time.Millisecond, 0},
		{"cancelled before a near deadline", 400 * time.Millisecond, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
			defer cancel()
			start := time.Now()
			var err error
			if tc.cancelAfter > 0 {
				_, _, err = sleepAndCancel(ctx, pool, 30, tc.cancelAfter)
			} else {
				err = pool.QueryRow(ctx, `SELECT pg_backend_pid() FROM pg_sleep(30)`).Scan(new(int32))
			}
			if err == nil {
				t.Fatal("a 30 s statement under a deadline returned no error")
			}
			// The grace is a minute: far past either bound.
			if took := time.Since(start); took > 20*time.Second {
				t.Fatalf("it ended %s after it started, with a %s deadline: the deadline did not break it", took, tc.timeout)
			}
		})
	}
}
