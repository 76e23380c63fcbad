package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// rollingP99Ms is the rolling restart's target: p99 commit → receipt over
// every delivery of the run (issue "lived-in database (1)").
const rollingP99Ms = 1000.0

// runRollingPhase: cfg.Nodes nodes holding cfg.RollingStreams streams under
// cfg.RollingRate notifications a second; after cfg.RollingSettle each node
// in turn is taken out of rotation and stopped with SIGTERM (its streams
// are told to come back after their own random delay), started again on
// the same address once it has exited, and put back once /readyz answers
// 200; then, after cfg.RollingPause, the next. The load runs cfg.RollingSettle more. Every delivery's
// commit → receipt, and every stream exactly once.
func runRollingPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*RollingResult, error) {
	res := &RollingResult{ReconnectRun: ReconnectRun{Nodes: cfg.Nodes, Streams: cfg.RollingStreams, Rows: cfg.RollingRows,
		Rate: cfg.RollingRate, HTTPShare: cfg.HTTPShare, Browser: cfg.Browser}, Users: cfg.RollingUsers, Roles: cfg.RollingRoles, Mix: cfg.RollingMix,
		PauseSeconds: cfg.RollingPause.Seconds(), TargetP99Ms: rollingP99Ms}
	prog.Printf("rolling: %d nodes, %s streams of %s users, %.0f notifications/s, every node restarted in turn after %s",
		cfg.Nodes, num(float64(cfg.RollingStreams)), num(float64(cfg.RollingUsers)), cfg.RollingRate, cfg.RollingSettle)
	e, seed, err := nr.startReconnectNodes(ctx, cfg.Nodes, cfg.RollingStreams, cfg.RollingRows, prog)
	if err != nil {
		return res, err
	}
	defer e.Close()
	res.Seed = seed
	pop := livedPopulation(cfg.RollingUsers, cfg.RollingRoles)
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return res, err
	}
	l, err := nr.newLayout(e, pop, cfg.RollingStreams, start)
	if err != nil {
		return res, err
	}
	cs, g, opened, openSecs, err := nr.openWithLoad(ctx, e, l, pop, cfg.RollingRate, cfg.RollingMix, phaseRolling, prog, stderr)
	if err != nil {
		return res, err
	}
	defer cs.Close()
	defer g.Close()
	res.Opened, res.OpenSeconds, res.Clients = opened, openSecs, len(l.plans)

	samp := startSampler(ctx, e.admin, 200*time.Millisecond)
	ld := g.background(ctx, 24*time.Hour, phaseRolling, cs, cfg.RollingStreams, prog) // until g.stop
	res.LoadStart = ld.loadAvg
	loadErr := settle(ctx, cfg.RollingSettle, ld.done)
	for i := 0; i < cfg.Nodes && loadErr == nil; i++ {
		var rs RollingRestart
		rs, loadErr = restartInTurn(ctx, e, cs, i, ld.start)
		res.Restarts = append(res.Restarts, rs)
		prog.Printf("rolling: node%d (%d streams) stopped at %.1f s, exited after %.2f s, ready again after %.2f s", i, rs.Streams,
			rs.StopAtSeconds, rs.ExitedSeconds, rs.ReadySeconds)
		if loadErr == nil && i < cfg.Nodes-1 && cfg.RollingPause > 0 {
			loadErr = settle(ctx, cfg.RollingPause, ld.done)
		}
	}
	if loadErr == nil {
		loadErr = settle(ctx, cfg.RollingSettle, ld.done)
	}
	g.stop()
	if err := <-ld.done; loadErr == nil {
		loadErr = err
	}
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseRolling))
	cd, err := res.finish(ctx, cfg, e, cs, g, l, start, ld, loadErr)
	if err != nil {
		return res, fmt.Errorf("rolling: %w", err)
	}
	res.measure(cd, l, g.commits, ld.start)
	return res, exactlyOnce(prog, "rolling", res.Check)
}

// restartInTurn takes node i out of rotation, stops it with SIGTERM, starts
// it again on its address once it has exited, and puts it back once it is
// ready (StartNode returns when /readyz answers 200).
func restartInTurn(ctx context.Context, e *nodeEnv, cs *fleet.Fleet, i int, loadStart time.Time) (RollingRestart, error) {
	rs := RollingRestart{Node: "node" + itoa(i)}
	on, _ := e.nodes[i].Metric(ctx, "notifyd_streams_open")
	rs.Streams = int(on)
	if err := e.setDown(cs, i, true); err != nil {
		return rs, err
	}
	stop := time.Now()
	rs.StopAtSeconds = stop.Sub(loadStart).Seconds()
	if err := e.nodes[i].Stop(30 * time.Second); err != nil {
		return rs, fmt.Errorf("stop node%d: %w", i, err)
	}
	rs.ExitedSeconds = time.Since(stop).Seconds()
	if err := e.restartNode(ctx, i); err != nil {
		return rs, fmt.Errorf("restart node%d: %w", i, err)
	}
	rs.ReadySeconds = time.Since(stop).Seconds()
	return rs, e.setDown(cs, i, false)
}

// settle lets the load run for d, returning early with an error if the
// load ends (it only ends early on a failure) or ctx does.
func settle(ctx context.Context, d time.Duration, loadDone chan error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-loadDone:
		loadDone <- err
		return fmt.Errorf("the load ended early: %v", err)
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// measure computes commit → receipt over every delivery, and split by
// whether the notification was committed while a restart was under way
// (from its SIGTERM until its node was ready and its streams' longest
// reconnect delay had passed) or not.
func (r *RollingResult) measure(cd *checkedStreams, l *layout, commits map[string]int64, loadStart time.Time) {
	spread := 3 * time.Second // NOTIFY_RECONNECT_SPREAD's default
	var all, during, between []time.Duration
	inRestart := func(c int64) bool {
		for _, rs := range r.Restarts {
			from := loadStart.Add(time.Duration(rs.StopAtSeconds * float64(time.Second))).UnixNano()
			to := loadStart.Add(time.Duration(rs.StopAtSeconds*float64(time.Second)) + time.Duration(rs.ReadySeconds*float64(time.Second)) + spread).UnixNano()
			if c >= from && c < to {
				return true
			}
		}
		return false
	}
	for k := range l.ids {
		cd.deliveries(k, commits, func(_, at, c int64) {
			d := time.Duration(at - c)
			all = append(all, d)
			if inRestart(c) {
				during = append(during, d)
			} else {
				between = append(between, d)
			}
		})
		if p := cd.reports[k].Pace; p != nil {
			r.Spread += p.Spread
			r.SpreadMaxMs = max(r.SpreadMaxMs, p.SpreadMaxMs)
			r.Backoffs += p.Backoffs
		}
	}
	r.Latency, r.DuringRestarts, r.BetweenRestarts = stats.Summarize(all), stats.Summarize(during), stats.Summarize(between)
	r.TargetMet = r.Latency.Count > 0 && r.Latency.P99Ms <= rollingP99Ms
}
