package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// runClusterPhase: cfg.Nodes nodes on one database, cfg.Streams streams
// spread over them, notifications at cfg.Rate for cfg.Duration (SQL and
// HTTP, targeted by user, role, both or everyone), random resumes on random
// nodes, and one node killed with SIGKILL at cfg.KillAt. Then the queue
// drains, a last broadcast marks the end, and every stream's deliveries
// are checked against the database: exactly once, in order, nothing
// foreign.
func runClusterPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*ClusterResult, error) {
	prog.Printf("cluster: %d nodes, %d streams of %d users, %.0f notifications/s for %s (%.0f%% over HTTP), %.0f resumes/s, kill at %.0f%%",
		cfg.Nodes, cfg.Streams, cfg.Users, cfg.Rate, cfg.Duration, 100*cfg.HTTPShare, cfg.ResumeRate, 100*cfg.KillAt)
	e, err := nr.startNodes(ctx, cfg.Nodes, map[string]string{
		"NOTIFY_MAX_STREAMS": strconv.Itoa(cfg.Streams + 1000), // every stream may end up on one node
	})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	pop := cluster.NewPopulation(rand.New(rand.NewPCG(3, 3)), "user", cfg.Users, cfg.Roles, cfg.RolesPerUser)
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return nil, err
	}
	// Every stream's first connection resumes from start, so what it must
	// receive is exactly defined even for streams that open late.
	l, err := nr.newLayout(e, pop, cfg.Streams, start)
	if err != nil {
		return nil, err
	}
	cs, opened, _, err := l.open(ctx, prog, phaseCluster, stderr)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	admin, err := nr.token("bench-admin", []string{"ADMIN"})
	if err != nil {
		return nil, err
	}
	g, err := newLoadGen(ctx, cfg, e, pop, admin)
	if err != nil {
		return nil, err
	}
	defer g.Close()

	res := &ClusterResult{Nodes: cfg.Nodes, Streams: cfg.Streams, Users: cfg.Users, Opened: opened, Clients: len(l.plans),
		TargetRate: cfg.Rate, LatencyBasis: "producer commit (SQL: INSERT returned; HTTP: 201 received) to the client reading the event"}
	samp := startSampler(ctx, e.admin, 200*time.Millisecond)
	win := startCPU(e, cs)
	walBefore := readWAL(ctx, e.admin)
	if err := cs.SetResumeRate(cfg.ResumeRate / float64(len(l.plans))); err != nil {
		return nil, err
	}
	ld := g.background(ctx, cfg.Duration, phaseCluster, cs, cfg.Streams, prog)
	res.LoadStart = ld.loadAvg
	var kill <-chan time.Time
	if cfg.KillAt > 0 {
		kill = time.After(time.Duration(cfg.KillAt * float64(cfg.Duration)))
	}
	var loadErr error
wait:
	for {
		select {
		case loadErr = <-ld.done:
			break wait
		case <-kill:
			res.Memory = e.memory(ctx) // all nodes, before one goes
			victim := cfg.Nodes - 1
			on, at, err := e.killNode(ctx, cs, victim, phaseCluster, prog, func() {})
			loadErr = err
			res.Killed, res.KilledAtSeconds, res.StreamsOnKilled = "node"+itoa(victim), at.Sub(ld.start).Seconds(), on
		}
	}
	_ = cs.SetResumeRate(0)
	res.Seconds, res.DrainSeconds, res.LoadEnd, loadErr = ld.drain(ctx, cfg, e, cs, loadErr)
	res.CPU = win.stop(e, cs)
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseCluster))
	res.SQL, res.HTTP, res.HTTPRetries = g.sql.Load(), g.http.Load(), g.retries.Load()
	res.AchievedRate = float64(res.SQL+res.HTTP) / res.Seconds
	wal := readWAL(ctx, e.admin).since(walBefore, res.SQL+res.HTTP, res.Seconds+res.DrainSeconds)
	res.WALBytesPerNotification, res.WALSyncsPerSecond = wal.BytesPerInsert, wal.SyncsPerSecond
	res.MemoryAfter = e.memory(ctx)
	if loadErr != nil {
		return res, fmt.Errorf("cluster: %w", loadErr)
	}

	if err := verifyCluster(ctx, e, cs, l, g, start, ld.start, res); err != nil {
		return res, err
	}
	return res, exactlyOnce(prog, "cluster", res.Check)
}

// exactlyOnce prints a phase's exactly-once check and fails the phase
// when it did not pass.
func exactlyOnce(prog *progress, phase string, c cluster.Check) error {
	prog.Printf("%s: %s", phase, c)
	return checkFailure(phase, c)
}

// checkFailure is the phase's error when its check did not pass, or nil.
func checkFailure(phase string, c cluster.Check) error {
	if c.OK() {
		return nil
	}
	return fmt.Errorf("%s: exactly-once violated: %s %v", phase, c, c.Examples)
}

// verifyCluster checks every stream's deliveries against the database and
// computes the latencies.
func verifyCluster(ctx context.Context, e *nodeEnv, cs *fleet.Fleet, l *layout, g *loadGen, start int64, loadStart time.Time, res *ClusterResult) error {
	cd, err := checkStreams(ctx, e, cs, l, start, &res.StreamTally)
	if err != nil {
		return err
	}
	res.Published = cd.feed.Len()
	lat := make([]time.Duration, 0, 1<<20)
	const window = 10 * time.Second
	windows := make([][]time.Duration, int(time.Duration(res.Seconds*float64(time.Second))/window)+1)
	for k := range l.ids {
		cd.deliveries(k, g.commits, func(_, at, c int64) {
			d := time.Duration(at - c)
			lat = append(lat, d)
			if w := int(time.Duration(c-loadStart.UnixNano()) / window); w >= 0 && w < len(windows) {
				windows[w] = append(windows[w], d)
			}
		})
	}
	res.Deliveries = res.Check.Received
	res.DeliveryRate = float64(res.Deliveries) / (res.Seconds + res.DrainSeconds)
	res.Latency = stats.Summarize(lat)
	for i, w := range windows {
		if len(w) > 0 {
			res.Windows = append(res.Windows, LatencyWindow{FromSeconds: float64(i) * window.Seconds(),
				ToSeconds: min(float64(i+1)*window.Seconds(), res.Seconds), Latency: stats.Summarize(w)})
		}
	}
	return nil
}

// StreamTally is what the check of a phase's streams found, and what
// happened to their connections.
type StreamTally struct {
	Resumes       int            `json:"resumes"`
	Drops         int            `json:"drops"`
	ConnectErrors int            `json:"connect_errors"`
	CloseReasons  map[string]int `json:"close_reasons,omitempty"`
	Check         cluster.Check  `json:"check"`
}

// checkedStreams is every stream's report and the published notifications
// they were checked against.
type checkedStreams struct {
	reports map[int]fleet.StreamReport
	feed    *cluster.Feed
}

// checkStreams collects every stream's deliveries and checks them against
// the notifications published after start: exactly once, in order, nothing
// foreign.
func checkStreams(ctx context.Context, e *nodeEnv, cs *fleet.Fleet, l *layout, start int64, t *StreamTally) (*checkedStreams, error) {
	reports, err := cs.Report(ctx, true)
	if err != nil {
		return nil, err
	}
	feed, err := cluster.LoadFeed(ctx, e.admin, start)
	if err != nil {
		return nil, err
	}
	t.CloseReasons = map[string]int{}
	for k, id := range l.ids {
		r, ok := reports[k]
		if !ok {
			return nil, fmt.Errorf("no report for stream %d", k)
		}
		t.Check.Add(feed.Check(fmt.Sprintf("stream %d (%s)", k, id.UserID), id, start, r.Seqs))
		t.Resumes += r.Stats.Resumes
		t.Drops += r.Stats.Drops
		t.ConnectErrors += r.Stats.ConnectErrors
		for reason, n := range r.Stats.CloseReasons {
			t.CloseReasons[reason] += n
		}
		if r.Stats.ProtocolErrors > 0 {
			t.Check.Foreign += r.Stats.ProtocolErrors // a malformed event is not a delivery of anything
			t.Check.Examples = append(t.Check.Examples, fmt.Sprintf("stream %d: %s", k, r.Stats.FirstError))
		}
	}
	return &checkedStreams{reports: reports, feed: feed}, nil
}

// deliveries calls fn for each delivery to stream k of a notification whose
// commit time is in commits: its seq, when it was read and when it was
// committed (unix nanoseconds).
func (c *checkedStreams) deliveries(k int, commits map[string]int64, fn func(seq, at, commit int64)) {
	r := c.reports[k]
	for i, seq := range r.Seqs {
		p, ok := c.feed.Get(seq)
		if !ok {
			continue
		}
		if t, ok := commits[p.ID]; ok {
			fn(seq, r.AtMicros[i]*1000, t)
		}
	}
}
