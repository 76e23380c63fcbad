package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
)

// loadGen produces notifications at a steady rate: most as SQL inserts in
// small multi-row statements (how an application with a queue of its own
// sends), the rest as POST /api/notifications to a random live node with an
// admin token and an Idempotency-Key, retried on another node when a node
// dies mid-request. It records when each notification's commit returned
// (for SQL, when the INSERT … RETURNING came back; for HTTP, when the 201
// did), the start of its commit-to-receipt latency.
type loadGen struct {
	cfg   config
	e     *nodeEnv
	pop   cluster.Population
	pool  *pgxpool.Pool
	token string
	// target draws each notification's target: by default from pop with
	// cfg.Mix; a phase may set its own before run.
	target func(rnd *rand.Rand) notify.Target
	// halt, once closed, stops scheduling work before run's duration is up.
	halt     chan struct{}
	haltOnce sync.Once
	// keys makes this generator's Idempotency-Keys its own: a phase may
	// run several on one database (the storm with -storm-replica).
	keys string

	mu      sync.Mutex
	commits map[string]int64 // id -> unix nanoseconds

	sql, http, retries atomic.Int64
}

// sqlEvery is how often the SQL producers insert what is due.
const sqlEvery = 10 * time.Millisecond

func newLoadGen(ctx context.Context, cfg config, e *nodeEnv, pop cluster.Population, token string) (*loadGen, error) {
	pool, err := newPool(ctx, e.db.URL, 4, producerApp)
	if err != nil {
		return nil, err
	}
	g := &loadGen{cfg: cfg, e: e, pop: pop, pool: pool, token: token, commits: map[string]int64{}, halt: make(chan struct{}),
		keys: strconv.FormatInt(time.Now().UnixNano(), 36)}
	g.target = func(rnd *rand.Rand) notify.Target { return pop.Target(rnd, cfg.Mix) }
	return g, nil
}

// stop makes run stop starting work now; work in flight is finished.
func (g *loadGen) stop() { g.haltOnce.Do(func() { close(g.halt) }) }

func (g *loadGen) Close() { g.pool.Close() }

func (g *loadGen) committed(ids []string, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		g.commits[id] = at.UnixNano()
	}
}

// sent is how many notifications have been committed so far.
func (g *loadGen) sent() int64 { return g.sql.Load() + g.http.Load() }

// run produces for d (or until ctx ends) at cfg.Rate. Work started before
// d is up is finished, not cancelled: a cancelled insert or POST may or may
// not have committed, and the nodes would log the cancelled requests.
func (g *loadGen) run(ctx context.Context, d time.Duration) error {
	sched, stopSched := context.WithTimeout(ctx, d) // when to stop starting work
	defer stopSched()
	go func() {
		select {
		case <-g.halt:
			stopSched()
		case <-sched.Done():
		}
	}()
	work, stopWork := context.WithCancel(ctx) // work in flight: ends only on a failure
	defer stopWork()
	start := time.Now()
	sqlRate, httpRate := g.cfg.Rate*(1-g.cfg.HTTPShare), g.cfg.Rate*g.cfg.HTTPShare
	jobs := make(chan int, 64)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	fail := func(err error) {
		if ctx.Err() == nil {
			errMu.Lock()
			errs = append(errs, err)
			errMu.Unlock()
			stopSched()
			stopWork()
		}
	}
	for w := range 4 { // SQL producers
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for n := range jobs {
				targets := make([]notify.Target, n)
				for i := range targets {
					targets[i] = g.target(rnd)
				}
				ids, err := cluster.Insert(work, g.pool, targets, "bench", "")
				if err != nil {
					fail(err)
					continue
				}
				g.committed(ids, time.Now())
				g.sql.Add(int64(len(ids)))
			}
		}()
	}
	wg.Add(1)
	go func() { // the SQL schedule: what is due every sqlEvery
		defer wg.Done()
		defer close(jobs)
		t := time.NewTicker(sqlEvery)
		defer t.Stop()
		scheduled := 0
		for {
			select {
			case <-sched.Done():
				return
			case <-t.C:
			}
			if n := int(sqlRate*time.Since(start).Seconds()) - scheduled; n > 0 {
				select {
				case jobs <- n:
					scheduled += n
				case <-sched.Done():
					return
				}
			}
		}
	}()
	if httpRate > 0 {
		var next atomic.Int64
		for w := range 16 { // HTTP producers: the k-th post is due at k/httpRate
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(w), 8))
				for {
					k := next.Add(1) - 1
					if sleepUntil(sched, start.Add(time.Duration(float64(k)/httpRate*float64(time.Second)))) != nil {
						return
					}
					if err := g.post(work, rnd, k); err != nil {
						fail(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// loadRun is a load generator running in the background.
type loadRun struct {
	start   time.Time
	loadAvg float64 // the machine's when the load started
	// done has run's result; whoever reads it early puts it back.
	done         chan error
	stopProgress func()
}

// background runs g for d and prints the phase's progress every 2 s until
// stopProgress.
func (g *loadGen) background(ctx context.Context, d time.Duration, phase string, cs *fleet.Fleet, streams int, prog *progress) *loadRun {
	l := &loadRun{start: time.Now(), loadAvg: cluster.LoadAverage(), done: make(chan error, 1)}
	go func() { l.done <- g.run(ctx, d) }()
	l.stopProgress = prog.Every(2*time.Second, func() string {
		st := cs.Stats()
		head, _ := cluster.Head(ctx, g.e.admin)
		el := time.Since(l.start).Seconds()
		return fmt.Sprintf("%s: %.0fs, %d sent (%.0f/s), published to seq %d, %d delivered, %d/%d streams open, %d resumes, %d drops, %d connect errors",
			phase, el, g.sent(), float64(g.sent())/el, head, st.Received, st.Open, streams, st.Resumes, st.Drops, st.ConnectErrors)
	})
	return l
}

// drain ends a run whose load has stopped (loadErr: how it ended): it
// waits until the queue is empty, publishes a last broadcast and waits
// until every stream has it, so every stream has received everything it
// is going to. It returns how long the load and the drain took, and the
// machine's load average at the end.
func (l *loadRun) drain(ctx context.Context, cfg config, e *nodeEnv, cs *fleet.Fleet, loadErr error) (loadSecs, drainSecs, loadAvg float64, err error) {
	loadSecs = time.Since(l.start).Seconds()
	drainStart := time.Now()
	err = loadErr
	if err == nil {
		err = cluster.WaitDrained(ctx, e.admin, cfg.Timeout)
	}
	var sentinel int64
	if err == nil {
		sentinel, err = cluster.PublishSentinel(ctx, e.admin, cfg.Timeout)
	}
	if err == nil {
		if behind, werr := cs.WaitSeq(ctx, sentinel, cfg.Timeout); werr != nil {
			err = fmt.Errorf("%d streams never received the final broadcast: %w", behind, werr)
		}
	}
	l.stopProgress()
	return loadSecs, time.Since(drainStart).Seconds(), cluster.LoadAverage(), err
}

// post publishes one notification over HTTP; when a node fails it, it
// tries another with the same key.
func (g *loadGen) post(ctx context.Context, rnd *rand.Rand, k int64) error {
	target := g.target(rnd)
	key := fmt.Sprintf("bench-%s-%d", g.keys, k)
	var last error
	for attempt := range 20 {
		id, err := cluster.Post(ctx, g.e.http, g.e.set.URL(g.e.set.Pick(-1)), g.token, target, "bench http", key)
		if err == nil {
			g.committed([]string{id}, time.Now())
			g.http.Add(1)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		last = err
		g.retries.Add(1)
		if sleepCtx(ctx, time.Duration(attempt+1)*20*time.Millisecond) != nil {
			return nil
		}
	}
	return fmt.Errorf("post %s: %w", key, last)
}
