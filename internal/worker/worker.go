// Package worker drains notify.queue_items: it claims due items in batches
// with one FOR UPDATE SKIP LOCKED statement, publishes them (assigning their
// seqs in commit order) and records failures with exponential back-off.
//
// Any number of workers, in one process or many, may run against one queue:
// SKIP LOCKED keeps their claims apart, the lease token (worker id and attempt
// number) keeps a stalled worker from completing an item someone else has
// taken up again, and the publish turn (an advisory lock held to commit)
// orders their publishes.
//
// Where to look: a claim reads the end of the queue's index where new work
// appears (items due within ClaimLookback), and a sweep every SweepInterval
// reads the rest. Walking the whole index on every claim costs one read per
// item queued since the oldest snapshot any session holds (vacuum cannot
// remove their dead entries until it ends); see postgres.ClaimAndPublish.
//
// Wake-ups: an idle worker sleeps until the insert trigger's NOTIFY (passed in
// through Wake), the next due retry, or the poll interval, whichever is first.
// Under load (a claim finds more than one item, a ring came while it ran,
// or the last work was found moments before) it holds the busy mark
// (postgres.BusyMark, an advisory lock on a connection of its own, which
// ends with that connection) and inserts do not ring at all; before it goes
// idle it waits for the inserts that saw it busy and looks at the queue once
// more, so no insert waits for the poll. Otherwise a claim that finds a lone
// item is low load: the worker goes back to sleep unmarked, since every
// insert its claim did not see rings, and a notification costs two
// statements (the claim and NextDue) instead of six.
package worker

import (
	"cmp"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// Config tunes a worker.
type Config struct {
	// ID names the worker in queue_items.locked_by. Default host/pid.
	ID string
	// BatchSize is the most items claimed at once. Default 500.
	BatchSize int
	// PollInterval is the longest an idle worker sleeps without a wake-up
	// (NOTIFY_POLL_INTERVAL). Default 5s; each sleep is jittered by ±10%.
	PollInterval time.Duration
	// ClaimLookback is how far back a claim looks for due items (default
	// 2s): new work is due from its INSERT statement's start, so the recent
	// claim finds it by reading only that end of the queue's index, however
	// many dead entries a held snapshot leaves before it. What falls outside
	// (a producer's transaction that stays open longer than this after its
	// INSERT) is found by the next sweep. A worker that falls behind (full
	// batches) goes on from its last claimed item however old it is, so it
	// publishes in due order rather than newest first.
	ClaimLookback time.Duration
	// SweepInterval is how often the whole queue is swept for due items
	// the recent claim missed. Default: PollInterval.
	SweepInterval time.Duration
	// Lease is how long a claim is held before another worker may take the
	// item up again. Default 30s.
	Lease time.Duration
	// RetryBase is the back-off after the first failed attempt; it doubles
	// with each attempt, with jitter. Default 1s.
	RetryBase time.Duration
	// RetryMax caps the back-off. Default 5m.
	RetryMax time.Duration
	// Logger receives failures and rescues. Default slog.Default().
	Logger *slog.Logger
	// Hooks observe the worker (metrics, tests). Optional.
	Hooks Hooks
}

// Hooks are called synchronously by the worker loop and by its sweep, so
// from two goroutines.
type Hooks struct {
	// Claimed is called with the size of each non-empty claim.
	Claimed func(n int)
	// Published is called after a batch commits, with how many items it
	// published, the last seq, and how long the publish took.
	Published func(n int, lastSeq int64, took time.Duration)
	// Sent is given the notifications a claim-and-publish batch published,
	// in seq order, as soon as it commits and before the other hooks: the
	// process's feed hands them to its streams without reading them back
	// (feed.OfferBatch). The next claim waits for it.
	Sent func(ns []notify.Notification)
	// Failed is called for each failed attempt with the item's new status.
	Failed func(status string)
	// SetAside is called with how many items of a batch were failed at once
	// because their rows cannot be delivered consistently.
	SetAside func(n int)
	// Busy is called when the worker takes the busy mark (true) and when
	// it gives it up (false); only Run's loop calls it.
	Busy func(busy bool)
}

// WithDefaults returns a copy of c with every unset field defaulted.
func (c Config) WithDefaults() Config {
	host, _ := os.Hostname()
	c.ID = cmp.Or(c.ID, fmt.Sprintf("%s/%d", cmp.Or(host, "notifyd"), os.Getpid()))
	c.BatchSize = cmp.Or(c.BatchSize, 500)
	c.PollInterval = cmp.Or(c.PollInterval, 5*time.Second)
	c.ClaimLookback = cmp.Or(c.ClaimLookback, 2*time.Second)
	c.SweepInterval = cmp.Or(c.SweepInterval, c.PollInterval)
	c.Lease = cmp.Or(c.Lease, 30*time.Second)
	c.RetryBase = cmp.Or(c.RetryBase, time.Second)
	c.RetryMax = cmp.Or(c.RetryMax, 5*time.Minute)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("worker: BatchSize %d must be between 1 and 10000", c.BatchSize)
	case c.PollInterval < time.Millisecond:
		return fmt.Errorf("worker: PollInterval %s must be at least 1ms", c.PollInterval)
	case c.ClaimLookback < 10*time.Millisecond:
		return fmt.Errorf("worker: ClaimLookback %s must be at least 10ms", c.ClaimLookback)
	case c.SweepInterval < time.Millisecond:
		return fmt.Errorf("worker: SweepInterval %s must be at least 1ms", c.SweepInterval)
	case c.Lease < time.Second:
		return fmt.Errorf("worker: Lease %s must be at least 1s", c.Lease)
	case c.RetryBase <= 0 || c.RetryMax < c.RetryBase:
		return fmt.Errorf("worker: RetryBase %s must be positive and at most RetryMax %s", c.RetryBase, c.RetryMax)
	}
	return nil
}

// Worker is one queue consumer. Run it in its own goroutine.
type Worker struct {
	cfg     Config
	careful bool // the last fast batch failed: claim with a lease (owned by Run)
	// sweepFrom is where Run's own sweep of the whole queue stands (at
	// start), nil once it reached the end (owned by Run).
	sweepFrom *postgres.SweepCursor
	// behind is the due time of the last item of the last recent claim when
	// that batch was full (zero otherwise): the next claim goes on from
	// there, however long ago it is (owned by Run).
	behind time.Time
	// catchingUp is behind set, for the sweep beside Run, which then waits.
	catchingUp atomic.Bool
	// sweepFailed tells Run that a sweep's batch failed: the failing item
	// may lie where only a careful (leased, whole-queue) claim finds it.
	sweepFailed atomic.Bool
	queue       *postgres.Queue
	wake        chan struct{}
	log         *slog.Logger
}

// New returns a worker over queue.
func New(queue *postgres.Queue, cfg Config) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, queue: queue, wake: make(chan struct{}, 1), log: cfg.Logger.With("worker_id", cfg.ID)}, nil
}

// ID is the worker's name in queue_items.locked_by.
func (w *Worker) ID() string { return w.cfg.ID }

// Wake tells an idle worker to look at the queue now. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// retryDelay is the back-off before attempt+1: RetryBase·2^(attempt-1),
// capped at RetryMax, then "equal jitter" (between half and all of it) so
// items that failed together do not retry together.
func (w *Worker) retryDelay(attempt int) time.Duration {
	d := w.cfg.RetryBase
	for i := 1; i < attempt && d < w.cfg.RetryMax; i++ {
		if d > w.cfg.RetryMax/2 { // doubling would pass the cap (or overflow)
			d = w.cfg.RetryMax
			break
		}
		d *= 2
	}
	d = min(d, w.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}
