package worker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// installPublishFailure makes publishing any notification whose message
// starts with FAIL raise an exception, and logs every failed attempt the
// worker records (so the test sees each one, however fast the retries go).
// The refusal's time is kept in a sequence, which a rollback does not undo:
// the worker reads its clock for next_attempt_at after the refusal and before
// the UPDATE that stamps updated_at, so the two bracket the worker's "now".
func installPublishFailure(t *testing.T, ctx context.Context, db *pgtest.DB) {
	t.Helper()
	for _, sql := range []string{
		`CREATE SEQUENCE public.refused_at_us`,
		`CREATE FUNCTION public.refuse_publish() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM setval('public.refused_at_us', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
			RAISE EXCEPTION 'injected publish failure for %', NEW.message;
		END $$`,
		`CREATE TRIGGER refuse_publish BEFORE UPDATE ON notify.notifications
			FOR EACH ROW WHEN (NEW.message LIKE 'FAIL%') EXECUTE FUNCTION public.refuse_publish()`,
		`CREATE TABLE public.failed_attempts (
			attempts int, status text, last_error text, next_attempt_at timestamptz, updated_at timestamptz, refused_at timestamptz)`,
		`CREATE FUNCTION public.log_failed_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO public.failed_attempts VALUES (NEW.attempts, NEW.status, NEW.last_error, NEW.next_attempt_at, NEW.updated_at,
				to_timestamp((SELECT last_value FROM public.refused_at_us) / 1e6));
			RETURN NULL;
		END $$`,
		`CREATE TRIGGER log_failed_attempt AFTER UPDATE ON notify.queue_items
			FOR EACH ROW WHEN (OLD.status = 'processing' AND NEW.status IN ('pending', 'failed'))
			EXECUTE FUNCTION public.log_failed_attempt()`,
	} {
		pgtest.Exec(t, ctx, db.Pool, sql)
	}
}

func TestWorkerPublishFailure(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	installPublishFailure(t, ctx, db)
	const maxAttempts = 4
	if err := q.SetMaxAttempts(ctx, maxAttempts); err != nil {
		t.Fatal(err)
	}
	// One bad notification in the middle of good ones, in one batch.
	pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message)
		SELECT CASE WHEN g = 4 THEN 'FAIL me' ELSE 'good ' || g END FROM generate_series(1, 8) g`)
	const good = 7

	var mu sync.Mutex
	var claimed, published []int
	var failed []string
	const retryBase = 10 * time.Millisecond
	startWorker(t, q, Config{
		ID:           "w",
		PollInterval: 20 * time.Millisecond,
		// No periodic sweep beside the loop: a sweep that locks the items
		// (and then fails on the bad one) while the careful claim runs
		// makes the claim skip them, and the first claim would hold fewer
		// than all 8. The loop's own first pass is still a sweep.
		SweepInterval: time.Hour,
		RetryBase:     retryBase,
		RetryMax:      time.Second,
		Hooks: Hooks{
			Claimed: func(n int) { mu.Lock(); claimed = append(claimed, n); mu.Unlock() },
			Published: func(n int, _ int64, _ time.Duration) {
				mu.Lock()
				published = append(published, n)
				mu.Unlock()
			},
			Failed: func(status string) { mu.Lock(); failed = append(failed, status); mu.Unlock() },
		},
	})

	testkit.Eventually(t, 20*time.Second, "the bad notification to fail for good", func() bool {
		return pgtest.Scalar[string](t, ctx, db.Pool, `SELECT q.status FROM notify.queue_items q
			JOIN notify.notifications n ON n.id = q.notification_id WHERE n.message = 'FAIL me'`) == "failed"
	})
	// The hook runs after the database recorded the failure: wait for it.
	testkit.Eventually(t, 20*time.Second, "the worker to report the last failure", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failed) >= 4
	})

	mu.Lock()
	defer mu.Unlock()
	if len(claimed) == 0 || claimed[0] != good+1 {
		t.Fatalf("claims %v: want the first to hold all %d items", claimed, good+1)
	}
	// The batch failed as a whole, so each good item was published alone.
	if want := slices.Repeat([]int{1}, good); !slices.Equal(published, want) {
		t.Errorf("published batches %v, want %v (one by one after the batch failed)", published, want)
	}
	if want := []string{"pending", "pending", "pending", "failed"}; !slices.Equal(failed, want) {
		t.Errorf("Failed hook statuses %v, want %v", failed, want)
	}

	s := readQueueState(t, ctx, db.Pool)
	// A publish that rolls back gives up the seqs it took (they come from a
	// sequence), so the good items' seqs may have gaps; they are distinct
	// and the head is the last of them.
	if s.Sent != good || s.Failed != 1 || s.Pending+s.Processing != 0 || s.Seqs != good || s.DistinctSeqs != good || s.MaxSeq != s.Head || s.Head < good {
		t.Errorf("queue after the run: %+v; want %d sent with distinct seqs, the head at the last, and 1 failed", s, good)
	}
	var attempts int
	var lastError string
	var seq *int64
	err := db.Pool.QueryRow(ctx, `SELECT q.attempts, q.last_error, n.seq FROM notify.queue_items q
		JOIN notify.notifications n ON n.id = q.notification_id WHERE n.message = 'FAIL me'`).Scan(&attempts, &lastError, &seq)
	if err != nil {
		t.Fatal(err)
	}
	if attempts != maxAttempts || seq != nil || !strings.Contains(lastError, "injected publish failure for FAIL me") {
		t.Errorf("bad item: attempts %d, seq %v, last_error %q; want %d attempts, no seq, the exception text", attempts, seq, lastError, maxAttempts)
	}

	// Back-off: attempt n waits between half and all of RetryBase·2^(n-1)
	// from the worker's clock, which read between refused_at and updated_at.
	rows, err := db.Pool.Query(ctx, `SELECT attempts, status, last_error,
			extract(epoch FROM next_attempt_at - updated_at), extract(epoch FROM next_attempt_at - refused_at)
		FROM public.failed_attempts ORDER BY attempts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var a int
		var status, reason string
		var fromUpdate, fromRefusal float64
		if err := rows.Scan(&a, &status, &reason, &fromUpdate, &fromRefusal); err != nil {
			t.Fatal(err)
		}
		n++
		// The worker's back-off is next_attempt_at minus its clock, which it
		// read after refused_at and before updated_at: so it lies between
		// these two measures, and that range must meet [full/2, full].
		// (Timestamps are microseconds.)
		low := time.Duration(fromUpdate * float64(time.Second))
		high := time.Duration(fromRefusal * float64(time.Second))
		full := retryBase << (a - 1)
		t.Logf("attempt %d: %s, back-off between %s and %s (allowed %s..%s)", a, status, low, high, full/2, full)
		if a != n {
			t.Errorf("logged attempt %d as failure #%d", a, n)
		}
		if high < full/2-2*time.Microsecond || low > full+2*time.Microsecond {
			t.Errorf("attempt %d backed off between %s and %s, want between %s and %s", a, low, high, full/2, full)
		}
		if !strings.Contains(reason, "injected publish failure") {
			t.Errorf("attempt %d recorded %q, want the exception text", a, reason)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != maxAttempts {
		t.Errorf("%d failed attempts recorded, want %d", n, maxAttempts)
	}
}
