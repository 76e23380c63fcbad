package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// ClusterResult is the cluster phase: nodes under load with resumes and a
// node killed.
type ClusterResult struct {
	LoadRun
	SQL          int64   `json:"sql_inserted"`
	HTTP         int64   `json:"http_posted"`
	HTTPRetries  int64   `json:"http_retries"`
	Published    int     `json:"published"`
	DeliveryRate float64 `json:"delivery_rate"`
	// Latency is producer commit to receipt, over every delivery whose
	// commit time the bench knows; Windows splits it by when the
	// notification was committed.
	Latency         stats.Summary   `json:"latency"`
	Windows         []LatencyWindow `json:"latency_windows"`
	Killed          string          `json:"killed,omitempty"`
	KilledAtSeconds float64         `json:"killed_at_seconds,omitempty"`
	StreamsOnKilled int             `json:"streams_on_killed,omitempty"`
	// WAL written per notification and WAL flushes per second over the
	// load and the drain (pg_stat_wal is cluster-wide).
	WALBytesPerNotification float64 `json:"wal_bytes_per_notification"`
	WALSyncsPerSecond       float64 `json:"wal_syncs_per_second"`
	// Memory is every node's just before the kill (when there is one);
	// MemoryAfter the survivors' at the end, holding every stream.
	Memory      []NodeMemory `json:"memory_before_kill,omitempty"`
	MemoryAfter []NodeMemory `json:"memory_after"`
	CPU         []ProcCPU    `json:"cpu"`
}

// LatencyWindow is the latency of the notifications committed in one
// stretch of a run.
type LatencyWindow struct {
	FromSeconds float64       `json:"from_seconds"`
	ToSeconds   float64       `json:"to_seconds"`
	Latency     stats.Summary `json:"latency"`
}

// runClusterPhase: cfg.Nodes nodes on one database, cfg.Streams streams
// spread over them, notifications at cfg.Rate for cfg.Duration (SQL and
// HTTP, targeted by user, role, both or everyone), random resumes on random
// nodes, and one node killed with SIGKILL at cfg.KillAt. Then the queue
// drains, a last broadcast marks the end, and every stream's deliveries
// are checked against the database: exactly once, in order, nothing
// foreign.
func (nr *nodeRun) runClusterPhase(ctx context.Context) (*ClusterResult, error) {
	cfg, prog, rep := nr.cfg, nr.prog, nr.rep
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
	// Every stream's first connection resumes from start, so what it must
	// receive is exactly defined even for streams that open late.
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return nil, err
	}
	res := &ClusterResult{}
	lp, err := e.openLoad(ctx, phaseCluster, pop, cfg.Streams, start, nil, nil, cfg.Rate, cfg.Mix, &res.LoadRun)
	if err != nil {
		return nil, err
	}
	defer lp.Close()
	samp := startSampler(ctx, e.admin, 200*time.Millisecond)
	win := startCPU(e, lp.cs)
	walBefore := readWAL(ctx, e.admin)
	if err := lp.cs.SetResumeRate(cfg.ResumeRate / float64(len(lp.l.plans))); err != nil {
		return nil, err
	}
	lp.background(ctx, cfg.Duration)
	var kill <-chan time.Time
	if cfg.KillAt > 0 {
		kill = time.After(time.Duration(cfg.KillAt * float64(cfg.Duration)))
	}
	var loadErr error
	select {
	case loadErr = <-lp.done:
	case <-kill:
		res.Memory = e.memory(ctx) // all nodes, before one goes
		victim := cfg.Nodes - 1
		on, at, err := e.killNode(ctx, lp.cs, victim, phaseCluster, func() {})
		res.Killed, res.KilledAtSeconds, res.StreamsOnKilled = "node"+strconv.Itoa(victim), at.Sub(lp.began).Seconds(), on
		loadErr = cmp.Or(err, <-lp.done)
	}
	_ = lp.cs.SetResumeRate(0)
	cd, err := lp.finish(ctx, loadErr)
	res.CPU = win()
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseCluster))
	res.SQL, res.HTTP, res.HTTPRetries = lp.g.sql.Load(), lp.g.http.Load(), lp.g.retries.Load()
	wal := readWAL(ctx, e.admin).since(walBefore, res.Sent, res.Seconds+res.DrainSeconds)
	res.WALBytesPerNotification, res.WALSyncsPerSecond = wal.BytesPerInsert, wal.SyncsPerSecond
	res.MemoryAfter = e.memory(ctx)
	if err != nil {
		return res, err
	}
	res.Published = cd.feed.Len()
	res.DeliveryRate = float64(res.Deliveries) / (res.Seconds + res.DrainSeconds)
	const window = 10 * time.Second
	n := int(time.Duration(res.Seconds*float64(time.Second))/window) + 1
	var parts []stats.Summary
	res.Latency, parts = lp.split(cd, n, func(c int64) int { return int(time.Duration(c-lp.began.UnixNano()) / window) })
	for i, p := range parts {
		if p.Count > 0 {
			res.Windows = append(res.Windows, LatencyWindow{FromSeconds: float64(i) * window.Seconds(),
				ToSeconds: min(float64(i+1)*window.Seconds(), res.Seconds), Latency: p})
		}
	}
	return res, exactlyOnce(prog, phaseCluster, res.Check)
}

func (c *ClusterResult) write(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n7. Cluster under load and faults: %d nodes on one database, %s streams of %s users (%d client processes)\n",
		c.Nodes, num(float64(c.Streams)), num(float64(r.cfg.Users)), c.Clients)
	kill := "no node killed"
	if c.Killed != "" {
		kill = fmt.Sprintf("%s killed with SIGKILL at %.0f s holding %d streams", c.Killed, c.KilledAtSeconds, c.StreamsOnKilled)
	}
	writeTable(w, "", fmt.Sprintf("load\t%s notifications in %.0f s: %s/s (target %s/s); %s over SQL, %s over HTTP (%d retried on another node)",
		num(float64(c.SQL+c.HTTP)), c.Seconds, num(c.AchievedRate), num(c.Rate), num(float64(c.SQL)), num(float64(c.HTTP)), c.HTTPRetries),
		fmt.Sprintf("delivered\t%s events to streams, %s/s; the last stream had everything %.2f s after the load stopped", num(float64(c.Deliveries)), num(c.DeliveryRate), c.DrainSeconds),
		fmt.Sprintf("faults\t%d random resumes; %s", c.Resumes, kill),
		fmt.Sprintf("WAL\t%s bytes per notification, %s flushes/s (cluster-wide)", num(c.WALBytesPerNotification), num(c.WALSyncsPerSecond)))
	writeTable(w, "commit to receipt"+summaryHeader, append([]string{summaryRow("every delivery", c.Latency)},
		rowsOf(c.Windows, func(_ int, win LatencyWindow) string {
			mark := ""
			if c.Killed != "" && c.KilledAtSeconds >= win.FromSeconds && c.KilledAtSeconds < win.ToSeconds {
				mark = " (kill)"
			}
			return summaryRow(fmt.Sprintf("committed %.0f-%.0f s%s", win.FromSeconds, win.ToSeconds, mark), win.Latency)
		})...)...)
	fmt.Fprintln(w, "   (producer commit (SQL: INSERT returned; HTTP: 201 received) to the client reading the event; deliveries replayed after the kill and after resumes included)")
	c.writeEnd(w)
	writeMemory(w, "memory before the kill", c.Memory)
	writeMemory(w, "memory at the end", c.MemoryAfter)
	writeCPU(w, c.CPU)
}

// rollingP99Ms is the rolling restart's target: p99 commit → receipt over
// every delivery of the run (issue "lived-in database (1)").
const rollingP99Ms = 1000.0

// RollingResult is the rolling restart phase.
type RollingResult struct {
	LoadRun
	Restarts []RollingRestart `json:"restarts"`
	// Latency is commit → receipt over every delivery; DuringRestarts over
	// notifications committed from a SIGTERM to 3 s after its node was
	// ready again, BetweenRestarts over the rest.
	Latency         stats.Summary `json:"latency"`
	DuringRestarts  stats.Summary `json:"latency_during_restarts"`
	BetweenRestarts stats.Summary `json:"latency_between_restarts"`
	TargetMet       bool          `json:"target_met"`
	// ShutdownTimeout is the nodes' NOTIFY_SHUTDOWN_TIMEOUT, which bounds
	// how long each takes to hand its streams back.
	ShutdownTimeout string `json:"shutdown_timeout"`
}

// rollingShutdownTimeout is the nodes' NOTIFY_SHUTDOWN_TIMEOUT in the
// rolling restart: Kubernetes' default grace period (30 s), which lets a
// node drain its streams at NOTIFY_DRAIN_RATE, where notifyd's own default
// (10 s, docker stop's) would cut the drain of the last node, which holds
// most streams (restarted nodes come back empty), short.
const rollingShutdownTimeout = 30 * time.Second

// RollingRestart is one node's restart: when it was sent SIGTERM (seconds
// into the load), how long it took to exit and to be ready again.
type RollingRestart struct {
	Node          string  `json:"node"`
	Streams       int     `json:"streams"`
	StopAtSeconds float64 `json:"stop_at_seconds"`
	ExitedSeconds float64 `json:"exited_after_seconds"`
	ReadySeconds  float64 `json:"ready_after_seconds"`
}

// runRollingPhase: cfg.Nodes nodes holding cfg.RollingStreams streams under
// cfg.RollingRate notifications a second; after cfg.RollingSettle each node
// in turn is taken out of rotation and stopped with SIGTERM (it hands its
// streams back at NOTIFY_DRAIN_RATE, each told to come back at once),
// started again on
// the same address once it has exited, and put back once /readyz answers
// 200; then, after cfg.RollingPause, the next. The load runs
// cfg.RollingSettle more. Every delivery's commit → receipt, and every
// stream exactly once.
func (nr *nodeRun) runRollingPhase(ctx context.Context) (*RollingResult, error) {
	cfg, prog, rep := nr.cfg, nr.prog, nr.rep
	prog.Printf("rolling: %d nodes, %s streams of %s users, %.0f notifications/s, every node restarted in turn after %s",
		cfg.Nodes, num(float64(cfg.RollingStreams)), num(float64(cfg.RollingUsers)), cfg.RollingRate, cfg.RollingSettle)
	e, seed, err := nr.startSeededNodes(ctx, cfg.Nodes, cfg.RollingStreams, cfg.RollingRows,
		map[string]string{"NOTIFY_SHUTDOWN_TIMEOUT": rollingShutdownTimeout.String()})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res := &RollingResult{LoadRun: LoadRun{Rows: cfg.RollingRows, Seed: seed}, ShutdownTimeout: e.settings["NOTIFY_SHUTDOWN_TIMEOUT"]}
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return res, err
	}
	lp, err := e.openLoad(ctx, phaseRolling, livedPopulation(cfg.RollingUsers, cfg.RollingRoles), cfg.RollingStreams, start, nil, &cfg.Browser,
		cfg.RollingRate, cfg.RollingMix, &res.LoadRun)
	if err != nil {
		return res, err
	}
	defer lp.Close()
	samp := startSampler(ctx, e.admin, 200*time.Millisecond)
	lp.background(ctx, 24*time.Hour) // until lp.g.stop
	loadErr := lp.wait(ctx, cfg.RollingSettle)
	for i := 0; i < cfg.Nodes && loadErr == nil; i++ {
		rs := RollingRestart{Node: fmt.Sprintf("node%d", i), Streams: e.streamsOn(ctx, i)}
		if loadErr = e.setDown(lp.cs, i, true); loadErr == nil {
			stop := time.Now()
			rs.StopAtSeconds = stop.Sub(lp.began).Seconds()
			if loadErr = e.nodes[i].Stop(rollingShutdownTimeout + 15*time.Second); loadErr == nil {
				rs.ExitedSeconds = time.Since(stop).Seconds()
				loadErr = e.restartNode(ctx, i) // StartNode returns when /readyz answers 200
				rs.ReadySeconds = time.Since(stop).Seconds()
			}
		}
		if loadErr == nil {
			loadErr = e.setDown(lp.cs, i, false)
		}
		res.Restarts = append(res.Restarts, rs)
		prog.Printf("rolling: node%d (%d streams) stopped at %.1f s, exited after %.2f s, ready again after %.2f s", i, rs.Streams,
			rs.StopAtSeconds, rs.ExitedSeconds, rs.ReadySeconds)
		if loadErr == nil && i < cfg.Nodes-1 && cfg.RollingPause > 0 {
			loadErr = lp.wait(ctx, cfg.RollingPause)
		}
	}
	if loadErr == nil {
		loadErr = lp.wait(ctx, cfg.RollingSettle)
	}
	lp.g.stop()
	if err := <-lp.done; loadErr == nil {
		loadErr = err
	}
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseRolling))
	cd, err := lp.finish(ctx, loadErr)
	if err != nil {
		return res, err
	}
	// Split by whether the notification was committed while a restart was
	// under way: from its SIGTERM until its node was ready and its streams'
	// longest reconnect delay (NOTIFY_RECONNECT_SPREAD's default, 3 s) had
	// passed.
	var parts []stats.Summary
	res.Latency, parts = lp.split(cd, 2, func(c int64) int {
		for _, rs := range res.Restarts {
			from := lp.began.Add(time.Duration(rs.StopAtSeconds * float64(time.Second)))
			if to := from.Add(time.Duration(rs.ReadySeconds*float64(time.Second)) + 3*time.Second); c >= from.UnixNano() && c < to.UnixNano() {
				return 0
			}
		}
		return 1
	})
	res.DuringRestarts, res.BetweenRestarts = parts[0], parts[1]
	res.TargetMet = res.Latency.Count > 0 && res.Latency.P99Ms <= rollingP99Ms
	return res, exactlyOnce(prog, "rolling", res.Check)
}

func (r *RollingResult) write(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\n10. Rolling restart: %d nodes, %s streams of %s users (%d client processes), %s rows seeded; %.0f notifications/s (%.0f%% over HTTP), %s/s achieved, %s deliveries\n",
		r.Nodes, num(float64(r.Streams)), num(float64(rep.cfg.RollingUsers)), r.Clients, num(float64(r.Rows)), r.Rate, 100*r.HTTPShare, num(r.AchievedRate), num(float64(r.Deliveries)))
	balancer := "a node at random"
	if rep.cfg.LeastConn {
		balancer = "the node holding the fewest (least connections)"
	}
	fmt.Fprintf(w, "   each node in turn: out of rotation, SIGTERM (NOTIFY_SHUTDOWN_TIMEOUT=%s), started again on its address once exited, back in rotation at /readyz 200, next after %.0f s; a stream that moves goes to %s\n",
		r.ShutdownTimeout, rep.cfg.RollingPause.Seconds(), balancer)
	for _, rs := range r.Restarts {
		fmt.Fprintf(w, "   %s: SIGTERM at %.1f s holding %d streams, exited after %.2f s, ready again after %.2f s\n",
			rs.Node, rs.StopAtSeconds, rs.Streams, rs.ExitedSeconds, rs.ReadySeconds)
	}
	writeTable(w, "commit -> receipt"+summaryHeader+"\ttarget",
		summaryRow("every delivery of the run", r.Latency, fmt.Sprintf("p99 <= %.0f ms: %s", rollingP99Ms, verdict(r.TargetMet))),
		summaryRow("committed during a restart (SIGTERM to ready + 3 s)", r.DuringRestarts, ""),
		summaryRow("committed between restarts", r.BetweenRestarts, ""))
	r.writeEnd(w)
}
