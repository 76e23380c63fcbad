package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// runBroadcastPhase opens cfg.BroadcastStreams streams on one node, then
// inserts cfg.Broadcasts notifications to everyone, one every
// cfg.BroadcastInterval, and measures from each one's commit (the insert
// returning to the bench) to its receipt on each stream, and on the last.
func runBroadcastPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*BroadcastResult, error) {
	s := cfg.BroadcastStreams
	prog.Printf("broadcast: %d streams on one node, %d broadcasts %s apart", s, cfg.Broadcasts, cfg.BroadcastInterval)
	e, l, cs, opened, _, err := nr.openOneNode(ctx, phaseBroadcast, s, 2, "bc", nil, prog, stderr)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	defer cs.Close()
	// The streams opened live (no Last-Event-ID) before anything was
	// published: each must receive everything after this head.
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return nil, err
	}

	res := &BroadcastResult{Streams: s, Opened: opened, Broadcasts: cfg.Broadcasts, TargetP99Ms: targetBroadcastP99Ms}
	samp := startSampler(ctx, e.admin, 100*time.Millisecond)
	win := startCPU(e, cs)
	commits := map[string]int64{} // unix nanoseconds
	for b := range cfg.Broadcasts {
		if err := sleepCtx(ctx, cfg.BroadcastInterval); err != nil {
			return nil, err
		}
		var id string
		if err := e.admin.QueryRow(ctx, `INSERT INTO notify.notifications (message, module) VALUES ($1, 'bench') RETURNING id::text`,
			fmt.Sprintf("broadcast %d", b)).Scan(&id); err != nil {
			return nil, fmt.Errorf("broadcast: insert: %w", err)
		}
		commits[id] = time.Now().UnixNano()
		if (b+1)%5 == 0 {
			st := cs.Stats()
			prog.Printf("broadcast: %d of %d sent, %d deliveries so far", b+1, cfg.Broadcasts, st.Received)
		}
	}
	sentinel, err := cluster.PublishSentinel(ctx, e.admin, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	behind, err := cs.WaitSeq(ctx, sentinel, cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("broadcast: %d streams did not receive everything: %w", behind, err)
	}
	res.CPU = win.stop(e, cs)
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseBroadcast))
	if mem := e.memory(ctx); len(mem) == 1 {
		res.Memory = mem[0]
	}
	for _, c := range res.CPU {
		if c.Name == "node0" {
			res.NodeCPUPerBroadcastMs = c.CPUSeconds * 1000 / float64(cfg.Broadcasts+1)
		}
	}

	var tally StreamTally
	cd, err := checkStreams(ctx, e, cs, l, start, &tally)
	if err != nil {
		return nil, err
	}
	res.Check = tally.Check
	last := map[int64]time.Duration{} // per broadcast seq: the latest receipt
	var all []time.Duration
	for k := range l.ids {
		cd.deliveries(k, commits, func(seq, at, c int64) { // the sentinel has no commit time
			d := time.Duration(at - c)
			all = append(all, d)
			last[seq] = max(last[seq], d)
		})
	}
	lasts := make([]time.Duration, 0, len(last))
	for _, d := range last {
		lasts = append(lasts, d)
	}
	res.LastReceipt, res.AllReceipts = stats.Summarize(lasts), stats.Summarize(all)
	res.TargetMet = res.Check.OK() && len(lasts) == cfg.Broadcasts && res.LastReceipt.P99Ms <= targetBroadcastP99Ms
	prog.Printf("broadcast: commit to last stream p50 %.0f ms, p99 %.0f ms, max %.0f ms; to each stream p50 %.0f ms, p99 %.0f ms; %s",
		res.LastReceipt.P50Ms, res.LastReceipt.P99Ms, res.LastReceipt.MaxMs, res.AllReceipts.P50Ms, res.AllReceipts.P99Ms, res.Check)
	return res, checkFailure(phaseBroadcast, res.Check)
}
