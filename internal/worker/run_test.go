package worker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestWorkerTakesUpCrashedWorkersBatch: a worker that claimed a batch and
// died leaves it processing; a live worker takes it up once the lease has
// expired and publishes every item exactly once.
func TestWorkerTakesUpCrashedWorkersBatch(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	const total, dead = 50, 20
	insert(t, ctx, db.Pool, total, "crash")
	claims, err := q.Claim(ctx, "dead", dead)
	if err != nil || len(claims) != dead {
		t.Fatalf("dead worker's claim: %d items, %v", len(claims), err)
	}
	deadIDs := make([]int64, len(claims))
	for i, c := range claims {
		deadIDs[i] = c.ItemID
	}
	deadAt := pgtest.Scalar[time.Time](t, ctx, db.Pool, `SELECT max(locked_at) FROM notify.queue_items WHERE locked_by = 'dead'`)

	var publishedItems atomic.Int64
	const lease = time.Second
	startWorker(t, q, Config{
		ID:           "live",
		PollInterval: 50 * time.Millisecond,
		Lease:        lease,
		Hooks: Hooks{Published: func(n int, _ int64, _ time.Duration) {
			publishedItems.Add(int64(n))
		}},
	})
	testkit.Eventually(t, 15*time.Second, "every item to be sent", func() bool {
		return readQueueState(t, ctx, db.Pool).Sent == total
	})

	s := readQueueState(t, ctx, db.Pool)
	if s.Processing != 0 || s.Pending != 0 || s.Failed != 0 || s.Seqs != total || s.DistinctSeqs != total || s.MaxSeq != total || s.Head != total {
		t.Fatalf("queue after takeover: %+v; want %d sent with seqs 1..%d, none processing", s, total, total)
	}
	// The hook runs after the batch's commit, so it may follow what the
	// queue already shows (make test saw 30 of 50 reported at that moment).
	testkit.Eventually(t, 10*time.Second, "the worker to report every published item", func() bool {
		return publishedItems.Load() == total
	})
	// The dead worker's items were taken up after the lease, on attempt 2;
	// the others on attempt 1.
	var early, wrongAttempts int64
	err = db.Pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE id = ANY($1) AND sent_at < $3::timestamptz + $2::interval),
			count(*) FILTER (WHERE attempts <> CASE WHEN id = ANY($1) THEN 2 ELSE 1 END)
		FROM notify.queue_items`, deadIDs, lease, deadAt).Scan(&early, &wrongAttempts)
	if err != nil {
		t.Fatal(err)
	}
	if early != 0 || wrongAttempts != 0 {
		t.Fatalf("%d of the dead worker's items were taken before the lease expired, %d items have the wrong attempts", early, wrongAttempts)
	}
}

// TestTwoWorkersPublishEveryNotificationOnce runs two workers on one queue.
func TestTwoWorkersPublishEveryNotificationOnce(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	const total = 2000
	counts := map[string]*atomic.Int64{"w1": {}, "w2": {}}
	var sentMu sync.Mutex
	sent := map[int64]int{} // seq -> times a Sent hook was given it
	for id, n := range counts {
		startWorker(t, q, Config{
			ID:           id,
			BatchSize:    100,
			PollInterval: 20 * time.Millisecond,
			Hooks: Hooks{
				Published: func(k int, _ int64, _ time.Duration) { n.Add(int64(k)) },
				Sent: func(ns []notify.Notification) {
					sentMu.Lock()
					defer sentMu.Unlock()
					for i, m := range ns {
						if i > 0 && m.Seq != ns[i-1].Seq+1 {
							t.Errorf("%s's batch handed on seq %d after %d", id, m.Seq, ns[i-1].Seq)
						}
						sent[m.Seq]++
					}
				},
			},
		})
	}
	// Bulk inserts while the workers run: four transactions of 500.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			_, err := db.Pool.Exec(ctx, `INSERT INTO notify.notifications (message)
				SELECT 'bulk ' || $1::int || '-' || g FROM generate_series(1, 500) g`, i)
			if err != nil {
				t.Errorf("insert: %v", err)
			}
		})
	}
	wg.Wait()
	testkit.Eventually(t, 30*time.Second, "every notification to be sent", func() bool {
		return readQueueState(t, ctx, db.Pool).Sent == total
	})
	s := readQueueState(t, ctx, db.Pool)
	if s.Pending != 0 || s.Processing != 0 || s.Failed != 0 || s.Seqs != total || s.DistinctSeqs != total || s.MaxSeq != total || s.Head != total {
		t.Fatalf("queue after the run: %+v; want %d sent with seqs 1..%d", s, total, total)
	}
	// Each hook runs after its batch's commit (see above).
	testkit.Eventually(t, 10*time.Second, "the workers to report every published item", func() bool {
		return counts["w1"].Load()+counts["w2"].Load() == total
	})
	t.Logf("w1 published %d, w2 published %d", counts["w1"].Load(), counts["w2"].Load())
	// Every published notification was handed to the Sent hook once.
	sentMu.Lock()
	defer sentMu.Unlock()
	for seq := int64(1); seq <= total; seq++ {
		if sent[seq] != 1 {
			t.Fatalf("seq %d was handed on %d times (%d seqs in all), want once", seq, sent[seq], len(sent))
		}
	}
}

// TestIdleWorkerWokenByNotify: with a poll interval of an hour, only the
// insert trigger's NOTIFY (through a listener) can wake the worker. Lone
// inserts leave it unmarked (it sleeps right after each claim); a burst
// makes it take the busy mark and give it up once the queue is drained.
func TestIdleWorkerWokenByNotify(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewQueued(t)
	// The worker has its own pool, so the test can see what it last ran.
	const app = "notifyd-test-idle-worker"
	pool, err := postgres.OpenPool(ctx, db.URL, postgres.PoolConfig{MaxConns: 4, ApplicationName: app})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var marked, unmarked atomic.Int64
	hooks := Hooks{Busy: func(busy bool) {
		if busy {
			marked.Add(1)
		} else {
			unmarked.Add(1)
		}
	}}
	w, err := New(postgres.NewQueue(pool), Config{ID: "sleeper", PollInterval: time.Hour, Logger: testLogger(t), Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	running.Go(func() {
		if err := w.Run(runCtx); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); running.Wait() })
	var wakes atomic.Int64
	listenForRings(t, db.URL, func() { wakes.Add(1); w.Wake() })

	var since time.Time // the worker may have gone to sleep before the listener connected
	for round := 1; round <= 3; round++ {
		// The worker's last statement before it sleeps is NextDue.
		testkit.Eventually(t, 10*time.Second, "the worker to go to sleep", func() bool {
			return pgtest.Scalar[bool](t, ctx, db.Pool, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = $1 AND state = 'idle'
				  AND query LIKE 'SELECT min(next_attempt_at)%' AND query_start > $2)`, app, since)
		})
		before := wakes.Load()
		start := time.Now()
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) VALUES ('wake up')`)
		testkit.Eventually(t, 10*time.Second, "the notification to be published", func() bool {
			return pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.queue_items WHERE status = 'sent'`) == int64(round)
		})
		t.Logf("round %d: published %s after the insert", round, time.Since(start).Round(time.Millisecond))
		if wakes.Load() == before {
			t.Fatalf("round %d: published without a wake-up from the listener", round)
		}
		since = pgtest.Scalar[time.Time](t, ctx, db.Pool, `SELECT max(sent_at) FROM notify.queue_items`)
	}
	if n := marked.Load(); n != 0 {
		t.Fatalf("the worker took the busy mark %d times for lone inserts, want 0", n)
	}

	// A burst: the claim finds many items, so the worker marks itself busy
	// (inserts stop ringing) until the queue is drained.
	insert(t, ctx, db.Pool, 50, "burst")
	testkit.Eventually(t, 10*time.Second, "the burst to be published and the busy mark taken, then given up", func() bool {
		s := readQueueState(t, ctx, db.Pool)
		m := marked.Load()
		return s.Sent == 53 && m > 0 && unmarked.Load() == m && s.Busy == 0
	})
}

// TestWorkerReleasesClaimsAtShutdown stops a worker between its claim and
// its publish (the careful path, which holds claims with a lease; the fast
// path claims and publishes in one statement and holds nothing): the items
// go back to pending with their attempt uncounted and the worker is no
// longer listed busy.
func TestWorkerReleasesClaimsAtShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	insert(t, ctx, db.Pool, 5, "shutdown")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var claimed, published atomic.Int64
	w, err := New(q, Config{
		ID:           "stopping",
		PollInterval: time.Hour,
		Logger:       testLogger(t),
		Hooks: Hooks{
			Claimed: func(n int) {
				claimed.Add(int64(n))
				cancel() // shut down with the batch in hand
			},
			Published: func(int, int64, time.Duration) { published.Add(1) },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.careful = true
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("worker did not stop")
	}
	if claimed.Load() != 5 || published.Load() != 0 {
		t.Fatalf("claimed %d, published %d batches; want 5 claimed, none published", claimed.Load(), published.Load())
	}
	s := readQueueState(t, ctx, db.Pool)
	if s.Pending != 5 || s.Processing != 0 || s.Seqs != 0 || s.Busy != 0 {
		t.Fatalf("queue after shutdown: %+v; want 5 pending, none processing, no busy worker", s)
	}
	if n := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT count(*) FROM notify.queue_items WHERE attempts <> 0 OR locked_by IS NOT NULL OR locked_at IS NOT NULL`); n != 0 {
		t.Fatalf("%d released items still carry the attempt or the lock", n)
	}
}

// TestWorkerStopsIdle: a worker stopped while idle leaves no busy mark.
func TestWorkerStopsIdle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	insert(t, ctx, db.Pool, 30, "idle")
	_, stop := startWorker(t, q, Config{ID: "idler", BatchSize: 10, PollInterval: time.Hour})
	testkit.Eventually(t, 10*time.Second, "the batch to be sent and the worker idle", func() bool {
		s := readQueueState(t, ctx, db.Pool)
		return s.Sent == 30 && s.Busy == 0
	})
	stop()
	if s := readQueueState(t, ctx, db.Pool); s.Busy != 0 || s.Processing != 0 {
		t.Fatalf("after stopping an idle worker: %+v; want no busy mark and nothing processing", s)
	}
}

// TestWorkerBehindPublishesInDueOrder: a worker that falls further behind
// than its claim lookback (each batch's hand-on is slow here) goes on from
// its last claimed item, in due order, instead of publishing only what fell
// due within the lookback and leaving the older items to the next sweep
// (an hour away in this test).
func TestWorkerBehindPublishesInDueOrder(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	startWorker(t, q, Config{
		ID:            "slow",
		BatchSize:     10,
		ClaimLookback: time.Second,
		PollInterval:  20 * time.Millisecond,
		SweepInterval: time.Hour,
		Hooks:         Hooks{Sent: func([]notify.Notification) { time.Sleep(300 * time.Millisecond) }},
	})
	// Past the start's sweep of the whole queue (which goes on while its
	// batches are full): one item, sent.
	insert(t, ctx, db.Pool, 1, "warm-up")
	testkit.Eventually(t, 10*time.Second, "the warm-up item to be sent", func() bool {
		return readQueueState(t, ctx, db.Pool).Sent == 1
	})
	const statements, each = 10, 10 // 10 batches: about 3 s of work, all due within the first 0.1 s
	for i := range statements {
		insert(t, ctx, db.Pool, each, fmt.Sprint("s", i))
		time.Sleep(10 * time.Millisecond)
	}
	testkit.Eventually(t, 30*time.Second, "every item to be sent", func() bool {
		return readQueueState(t, ctx, db.Pool).Sent == 1+statements*each
	})
	var outOfOrder int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM (
			SELECT n.seq, lag(n.seq) OVER (ORDER BY q.next_attempt_at, q.id) AS before
			FROM notify.queue_items q JOIN notify.notifications n ON n.id = q.notification_id) s
		WHERE seq < before`).Scan(&outOfOrder); err != nil {
		t.Fatal(err)
	}
	if outOfOrder != 0 {
		t.Fatalf("%d items were published before an item due earlier", outOfOrder)
	}
}

// TestWorkersPublishSequentialCommitsInOrder: three workers, each woken by
// every insert's ring, and a producer committing one notification after
// another. Whichever worker each ring wakes, the notifications get their
// seqs in commit order: the claim that finds a later one holds the claim
// turn, so an earlier one is published already or claimed with it.
func TestWorkersPublishSequentialCommitsInOrder(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	var workers []*Worker
	for _, id := range []string{"w1", "w2", "w3"} {
		// An hour's poll and sweep: only the rings wake them.
		w, _ := startWorker(t, q, Config{ID: id, PollInterval: time.Hour})
		workers = append(workers, w)
	}
	listenForRings(t, db.URL, func() {
		for _, w := range workers {
			w.Wake()
		}
	})

	const total = 300
	for i := range total {
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message) VALUES ($1)`, fmt.Sprint(i))
	}
	testkit.Eventually(t, 30*time.Second, "every notification to be sent", func() bool {
		return readQueueState(t, ctx, db.Pool).Sent == total
	})
	rows, err := db.Pool.Query(ctx, `SELECT message::int FROM notify.notifications ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	order, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	var inversions []string
	for i, m := range order {
		if m != i {
			inversions = append(inversions, fmt.Sprintf("seq %d: notification %d", i+1, m))
		}
	}
	if len(inversions) > 0 {
		t.Fatalf("%d of %d sequential commits published out of commit order; first: %v", len(inversions), total, inversions[:min(len(inversions), 10)])
	}
}
