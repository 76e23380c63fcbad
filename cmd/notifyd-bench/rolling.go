package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// rollingP99Ms is the rolling restart's target: p99 commit → receipt over
// every delivery of the run (issue "lived-in database (1)").
const rollingP99Ms = 1000.0

// RollingResult is the rolling restart phase.
type RollingResult struct {
	LoadRun
	Users        int              `json:"users"`
	Roles        int              `json:"roles"`
	Mix          cluster.Mix      `json:"mix"`
	Restarts     []RollingRestart `json:"restarts"`
	PauseSeconds float64          `json:"pause_seconds"` // between a node's ready and the next SIGTERM
	// Latency is commit → receipt over every delivery; DuringRestarts over
	// notifications committed from a SIGTERM to 3 s after its node was
	// ready again, BetweenRestarts over the rest.
	Latency         stats.Summary `json:"latency"`
	DuringRestarts  stats.Summary `json:"latency_during_restarts"`
	BetweenRestarts stats.Summary `json:"latency_between_restarts"`
	TargetMet       bool          `json:"target_met"`
}

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
// in turn is taken out of rotation and stopped with SIGTERM (its streams
// are told to come back after their own random delay), started again on
// the same address once it has exited, and put back once /readyz answers
// 200; then, after cfg.RollingPause, the next. The load runs
// cfg.RollingSettle more. Every delivery's commit → receipt, and every
// stream exactly once.
func runRollingPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*RollingResult, error) {
	prog.Printf("rolling: %d nodes, %s streams of %s users, %.0f notifications/s, every node restarted in turn after %s",
		cfg.Nodes, num(float64(cfg.RollingStreams)), num(float64(cfg.RollingUsers)), cfg.RollingRate, cfg.RollingSettle)
	e, seed, err := nr.startSeededNodes(ctx, cfg.Nodes, cfg.RollingStreams, cfg.RollingRows, prog)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res := &RollingResult{LoadRun: LoadRun{Rows: cfg.RollingRows, Seed: seed}, Users: cfg.RollingUsers, Roles: cfg.RollingRoles, Mix: cfg.RollingMix,
		PauseSeconds: cfg.RollingPause.Seconds()}
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return res, err
	}
	lp, err := e.openLoad(ctx, phaseRolling, livedPopulation(cfg.RollingUsers, cfg.RollingRoles), cfg.RollingStreams, start, nil, &cfg.Browser,
		cfg.RollingRate, cfg.RollingMix, &res.LoadRun, prog, stderr)
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
			if loadErr = e.nodes[i].Stop(30 * time.Second); loadErr == nil {
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
	inRestart := func(c int64) bool {
		for _, rs := range res.Restarts {
			from := lp.began.Add(time.Duration(rs.StopAtSeconds * float64(time.Second)))
			to := from.Add(time.Duration(rs.ReadySeconds*float64(time.Second)) + 3*time.Second)
			if c >= from.UnixNano() && c < to.UnixNano() {
				return true
			}
		}
		return false
	}
	var all, during, between []time.Duration
	for k := range lp.l.ids {
		cd.deliveries(k, lp.g.commits, func(_, at, c int64) {
			d := time.Duration(at - c)
			all = append(all, d)
			if inRestart(c) {
				during = append(during, d)
			} else {
				between = append(between, d)
			}
		})
	}
	res.Latency, res.DuringRestarts, res.BetweenRestarts = stats.Summarize(all), stats.Summarize(during), stats.Summarize(between)
	res.TargetMet = res.Latency.Count > 0 && res.Latency.P99Ms <= rollingP99Ms
	return res, exactlyOnce(prog, "rolling", res.Check)
}

func (r *RollingResult) write(w io.Writer, _ *Report) {
	fmt.Fprintf(w, "\n10. Rolling restart: %d nodes, %s streams of %s users (%d client processes), %s rows seeded; %.0f notifications/s (%.0f%% over HTTP), %s/s achieved, %s deliveries\n",
		r.Nodes, num(float64(r.Streams)), num(float64(r.Users)), r.Clients, num(float64(r.Rows)), r.Rate, 100*r.HTTPShare, num(r.AchievedRate), num(float64(r.Deliveries)))
	fmt.Fprintf(w, "   each node in turn: out of rotation, SIGTERM, started again on its address once exited, back in rotation at /readyz 200, next after %.0f s\n", r.PauseSeconds)
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
