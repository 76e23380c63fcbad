package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// loadGen produces notifications at a steady rate: most as SQL inserts in
// small multi-row statements (how an application with a queue of its own
// sends), the rest as POST /api/notifications to a random live node with an
// admin token and an Idempotency-Key, retried on another node when a node
// dies mid-request. It records when each notification's commit returned
// (for SQL, when the INSERT … RETURNING came back; for HTTP, when the 201
// did), the start of its commit-to-receipt latency.
type loadGen struct {
	e         *nodeEnv
	rate      float64
	httpShare float64
	pool      *pgxpool.Pool
	token     string
	// target draws each notification's target; a phase may set its own.
	target func(rnd *rand.Rand) notify.Target
	// halt, once closed, stops starting work before run's duration is up.
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

func (g *loadGen) stop()       { g.haltOnce.Do(func() { close(g.halt) }) }
func (g *loadGen) sent() int64 { return g.sql.Load() + g.http.Load() }

func (g *loadGen) committed(ids []string, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		g.commits[id] = at.UnixNano()
	}
}

// run produces for d (or until ctx ends or stop): SQL producers insert
// what is due every sqlEvery, HTTP producers post the k-th notification
// at k/rate. Work started before d is up is finished, not cancelled: a
// cancelled insert or POST may or may not have committed, and the nodes
// would log the cancelled requests. The first failure ends the run.
func (g *loadGen) run(ctx context.Context, d time.Duration) error {
	start := time.Now()
	more := func(_ int64, due time.Time) bool {
		select {
		case <-g.halt:
			return false
		default:
			return due.Before(start.Add(d))
		}
	}
	rnds := make([]*rand.Rand, 4+16)
	for w := range rnds {
		rnds[w] = rand.New(rand.NewPCG(uint64(w), 7))
	}
	sqlRate, httpRate := g.rate*(1-g.httpShare), g.rate*g.httpShare
	producers, pctx := errgroup.WithContext(ctx)
	if httpRate > 0 {
		producers.Go(func() error {
			return slots(pctx, 16, start, time.Duration(float64(time.Second)/httpRate), more, func(ctx context.Context, w int, k int64) error {
				return g.post(ctx, rnds[4+w], k)
			})
		})
	}
	producers.Go(func() error {
		return slots(pctx, 4, start, sqlEvery, more, func(ctx context.Context, w int, k int64) error {
			n := int(sqlRate*(sqlEvery*time.Duration(k+1)).Seconds()) - int(sqlRate*(sqlEvery*time.Duration(k)).Seconds())
			if n == 0 {
				return nil
			}
			targets := make([]notify.Target, n)
			for i := range targets {
				targets[i] = g.target(rnds[w])
			}
			ids, err := cluster.Insert(ctx, g.pool, targets, "bench", "")
			if err == nil {
				g.committed(ids, time.Now())
				g.sql.Add(int64(len(ids)))
			}
			return err
		})
	})
	err := producers.Wait()
	return cmp.Or(ctx.Err(), err)
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

// LoadRun is what the phases under load (cluster, storm, rolling) report
// alike.
type LoadRun struct {
	Nodes       int     `json:"nodes"`
	Streams     int     `json:"streams"`
	Opened      int     `json:"opened"`
	OpenSeconds float64 `json:"open_seconds"`
	Clients     int     `json:"client_processes"`
	// Rows seeded before the nodes started, and how.
	Rows         int64         `json:"rows"`
	Seed         *LivedSeed    `json:"seed,omitempty"`
	Rate         float64       `json:"rate"`
	HTTPShare    float64       `json:"http_share"`
	Browser      fleet.Browser `json:"client_reconnect"`
	Sent         int64         `json:"sent"`
	AchievedRate float64       `json:"achieved_rate"`
	Deliveries   int           `json:"deliveries"`
	Seconds      float64       `json:"seconds"`
	DrainSeconds float64       `json:"drain_seconds"` // from the end of the load to the last stream's receipt
	// The machine's 1-minute load average when the load started and when
	// the last stream had everything: other work on a shared machine moves
	// the latency figures most.
	LoadStart float64 `json:"loadavg1_start"`
	LoadEnd   float64 `json:"loadavg1_end"`
	StreamTally
}

// writeEnd prints what every phase under load ends with: what happened to
// the streams' connections, the machine's load and the exactly-once check.
// A stopping node drains its streams (each closed at its own moment and
// told to come back at once), so a reconnectAfter of 0 ms is the norm.
func (r *LoadRun) writeEnd(w io.Writer) {
	fmt.Fprintf(w, "   connections: %d lost, %d failed connects %v (a try at a node just gone included); clients: %d backoffs, %d closing statuses with a reconnectAfter (longest %d ms; 0 when the stopping node drains); close reasons %v\n",
		r.Drops, r.ConnectErrors, r.ConnectFailures, r.Backoffs, r.Spread, r.SpreadMaxMs, r.CloseReasons)
	fmt.Fprintf(w, "   machine load average %.1f when the load started, %.1f at the end\n   exactly-once: %s\n", r.LoadStart, r.LoadEnd, checkLine(r.Check))
}

// loadPhase is the skeleton of a phase under load: its streams, open in
// client processes, and a load generator, running in the background once
// started, until it is drained and every stream checked.
type loadPhase struct {
	e     *nodeEnv
	name  string
	prog  *progress
	l     *layout
	cs    *fleet.Fleet
	g     *loadGen
	start int64 // every stream's first Last-Event-ID, and where the check starts
	run   *LoadRun
	// began is when the load started; done has its result (whoever reads
	// it early puts it back).
	began        time.Time
	done         chan error
	stopProgress func()
}

// openLoad opens streams streams of pop's users from start (placed by
// nodeOf, if not nil) and makes a load generator at rate with mix; the
// caller closes the result.
func (e *nodeEnv) openLoad(ctx context.Context, name string, pop cluster.Population, streams int, start int64, nodeOf func(int) int,
	browser *fleet.Browser, rate float64, mix cluster.Mix, run *LoadRun) (*loadPhase, error) {
	cfg, prog := e.run.cfg, e.run.prog
	*run = LoadRun{Nodes: len(e.nodes), Streams: streams, Rows: run.Rows, Seed: run.Seed, Rate: rate, HTTPShare: cfg.HTTPShare}
	if browser != nil {
		run.Browser = *browser
	}
	lp := &loadPhase{e: e, name: name, prog: prog, start: start, run: run}
	var err error
	if lp.l, err = e.newLayout(pop, streams, start, nodeOf); err != nil {
		return nil, err
	}
	if lp.cs, err = lp.l.open(ctx, name, browser, &run.Opened, &run.OpenSeconds); err != nil {
		return nil, err
	}
	run.Clients = len(lp.l.plans)
	admin, err := e.run.token("bench-admin", "ADMIN")
	if err == nil {
		lp.g = &loadGen{e: e, rate: rate, httpShare: cfg.HTTPShare, token: admin, commits: map[string]int64{}, halt: make(chan struct{}),
			keys: strconv.FormatInt(time.Now().UnixNano(), 36), target: func(rnd *rand.Rand) notify.Target { return pop.Target(rnd, mix) }}
		lp.g.pool, err = newPool(ctx, e.db.URL, 4, producerApp)
	}
	if err != nil {
		lp.cs.Close()
		return nil, err
	}
	return lp, nil
}

func (lp *loadPhase) Close() {
	lp.cs.Close()
	lp.g.pool.Close()
}

// background runs the load for d and prints progress every 2 s.
func (lp *loadPhase) background(ctx context.Context, d time.Duration) {
	lp.began, lp.done = time.Now(), make(chan error, 1)
	lp.run.LoadStart = cluster.LoadAverage()
	go func() { lp.done <- lp.g.run(ctx, d) }()
	lp.stopProgress = lp.prog.Every(2*time.Second, func() string {
		st := lp.cs.Stats()
		head, _ := cluster.Head(ctx, lp.e.admin)
		el, sent := time.Since(lp.began).Seconds(), lp.g.sent()
		return fmt.Sprintf("%s: %.0fs, %d sent (%.0f/s), published to seq %d, %d delivered, %d/%d streams open, %d resumes, %d drops, %d connect errors",
			lp.name, el, sent, float64(sent)/el, head, st.Received, st.Open, len(lp.l.ids), st.Resumes, st.Drops, st.ConnectErrors)
	})
}

// wait lets the load run for d, returning early with an error if the
// load ends (it only ends early on a failure) or ctx does.
func (lp *loadPhase) wait(ctx context.Context, d time.Duration) error {
	select {
	case err := <-lp.done:
		lp.done <- err
		return fmt.Errorf("the load ended early: %v", err)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// finish ends a run whose load has stopped (loadErr: how it ended): it
// waits until the queue is empty, publishes a last broadcast and waits
// until every stream has it, so every stream has received everything it
// is going to, then checks every stream against the database.
func (lp *loadPhase) finish(ctx context.Context, loadErr error) (*checkedStreams, error) {
	r, cfg := lp.run, lp.e.run.cfg
	r.Seconds = time.Since(lp.began).Seconds()
	drainStart := time.Now()
	err := loadErr
	if err == nil {
		err = cluster.WaitDrained(ctx, lp.e.admin, cfg.Timeout)
	}
	var sentinel int64
	if err == nil {
		sentinel, err = cluster.PublishSentinel(ctx, lp.e.admin, cfg.Timeout)
	}
	if err == nil {
		if behind, werr := lp.cs.WaitSeq(ctx, sentinel, cfg.Timeout); werr != nil {
			err = fmt.Errorf("%d streams never received the final broadcast: %w", behind, werr)
		}
	}
	lp.stopProgress()
	r.DrainSeconds, r.LoadEnd = time.Since(drainStart).Seconds(), cluster.LoadAverage()
	r.Sent = lp.g.sent()
	r.AchievedRate = float64(r.Sent) / r.Seconds
	if err != nil {
		return nil, fmt.Errorf("%s: %w", lp.name, err)
	}
	cd, err := checkStreams(ctx, lp.e, lp.cs, lp.l, lp.start, &r.StreamTally)
	r.Deliveries = r.Check.Received
	return cd, err
}

// split summarizes commit → receipt over every delivery (all) and over
// those whose commit time class puts in each of n parts (-1: none).
func (lp *loadPhase) split(cd *checkedStreams, n int, class func(commit int64) int) (all stats.Summary, parts []stats.Summary) {
	var every []time.Duration
	by := make([][]time.Duration, n)
	cd.each(lp.g.commits, func(_ int, _, at, c int64) {
		every = append(every, time.Duration(at-c))
		if i := class(c); i >= 0 && i < n {
			by[i] = append(by[i], time.Duration(at-c))
		}
	})
	for _, b := range by {
		parts = append(parts, stats.Summarize(b))
	}
	return stats.Summarize(every), parts
}

// startSeededNodes starts n nodes that keep any history (the seed goes
// back 30 days) and let every stream end up on one node, and seeds rows
// published notifications when rows > 0: the storm's and the rolling
// restart's database, as on one that has been in use. env adds the
// phase's own settings.
func (nr *nodeRun) startSeededNodes(ctx context.Context, n, streams int, rows int64, env map[string]string) (*nodeEnv, *LivedSeed, error) {
	settings := map[string]string{"NOTIFY_MAX_STREAMS": strconv.Itoa(streams + 1000), "NOTIFY_RETENTION": "8760h"}
	maps.Copy(settings, env)
	e, err := nr.startNodes(ctx, n, settings)
	if err != nil || rows == 0 {
		return e, nil, err
	}
	seed, err := e.seed(ctx, newLivedSeeder(e.admin, newLivedPlan([]int64{rows}, nr.cfg.LivedDense), rows, nr.prog), 0, rows)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return e, &seed, nil
}

// livedPopulation is users u0 … u<users-1>, user k holding the one role
// r<k mod roles>: the seed's own users and roles (below 100,000 and 200).
func livedPopulation(users, roles int) cluster.Population {
	p := cluster.Population{Roles: make([]string, roles), Users: make([]notify.Identity, users)}
	for i := range roles {
		p.Roles[i] = "r" + strconv.Itoa(i)
	}
	for k := range users {
		p.Users[k] = notify.Identity{UserID: "u" + strconv.Itoa(k), Roles: []string{p.Roles[k%roles]}}
	}
	return p
}
