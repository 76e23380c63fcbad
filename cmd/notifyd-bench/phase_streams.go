package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
)

// Targets of the node phases (issue 6).
const (
	targetRSSMiB          = 600
	targetPerStreamKiB    = 40
	targetBroadcastP99Ms  = 500
	targetResumeMs        = 500
	streamsPerUserOneNode = 10 // below NOTIFY_MAX_STREAMS_PER_USER's default of 20
)

// openOneNode starts one node with env (and room for streams) and opens
// streams live on it, streamsPerUserOneNode to a user of a population
// drawn with seed whose users are named prefix0, prefix1, …; the caller
// closes e and cs.
func (nr *nodeRun) openOneNode(ctx context.Context, phase string, streams int, seed uint64, prefix string, env map[string]string,
	prog *progress, stderr io.Writer) (e *nodeEnv, l *layout, cs *fleet.Fleet, opened int, openSecs float64, err error) {
	settings := map[string]string{"NOTIFY_MAX_STREAMS": strconv.Itoa(streams + 1000)}
	maps.Copy(settings, env)
	if e, err = nr.startNodes(ctx, 1, settings); err != nil {
		return nil, nil, nil, 0, 0, err
	}
	pop := cluster.NewPopulation(rand.New(rand.NewPCG(seed, seed)), prefix, (streams+streamsPerUserOneNode-1)/streamsPerUserOneNode, 10, 2)
	if l, err = nr.newLayout(e, pop, streams, -1); err == nil {
		cs, opened, openSecs, err = l.open(ctx, prog, phase, stderr)
	}
	if err != nil {
		e.Close()
		return nil, nil, nil, 0, 0, err
	}
	return e, l, cs, opened, openSecs, nil
}

// runStreamsPhase holds cfg.HoldStreams idle streams on one node for
// cfg.Hold with heartbeats every cfg.Heartbeat, and measures the node's
// resident memory and that every stream's heartbeats keep arriving.
func runStreamsPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*StreamsResult, error) {
	s := cfg.HoldStreams
	prog.Printf("streams: %d streams on one node for %s, heartbeat every %s", s, cfg.Hold, cfg.Heartbeat)
	e, l, cs, opened, openSecs, err := nr.openOneNode(ctx, phaseStreams, s, 1, "hold", map[string]string{
		"NOTIFY_HEARTBEAT_INTERVAL": cfg.Heartbeat.String(),
		"NOTIFY_CONN_TIMEOUT":       max(60*time.Second, 4*cfg.Heartbeat).String(),
	}, prog, stderr)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	defer cs.Close()

	res := &StreamsResult{Streams: s, Opened: opened, Clients: len(l.plans), OpenSeconds: openSecs,
		HoldSeconds: cfg.Hold.Seconds(), Heartbeat: cfg.Heartbeat.Seconds(), TargetRSSMiB: targetRSSMiB, TargetKiB: targetPerStreamKiB}
	if err := cs.MarkHeartbeats(); err != nil {
		return nil, err
	}
	samp := startSampler(ctx, e.admin, 500*time.Millisecond)
	win := startCPU(e, cs)
	end := time.Now().Add(cfg.Hold)
	tick := time.NewTicker(time.Second)
	for n := 1; time.Now().Before(end); n++ {
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
		rss, _ := e.nodes[0].RSS()
		res.PeakRSSMiB = max(res.PeakRSSMiB, mib(rss))
		if n%5 == 0 {
			st := cs.Stats()
			prog.Printf("streams: holding %d, node RSS %.0f MiB (%.1f KiB a stream), heartbeats: fewest %d, longest gap %d ms, %d drops",
				st.Open, mib(rss), float64(rss)/1024/float64(max(1, st.Open)), st.BeatsMin, st.MaxBeatGapMs, st.Drops)
		}
	}
	tick.Stop()
	res.CPU = win.stop(e, cs)
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseStreams))
	if mem := e.memory(ctx); len(mem) == 1 {
		res.Memory = mem[0]
	}
	res.PeakRSSMiB = max(res.PeakRSSMiB, res.Memory.RSSMiB)
	reports, err := cs.Report(ctx, false)
	if err != nil {
		return nil, err
	}
	res.BeatsMin = -1
	for _, r := range reports {
		st := r.Stats
		if res.BeatsMin < 0 || st.Heartbeats < res.BeatsMin {
			res.BeatsMin = st.Heartbeats
		}
		if st.Heartbeats == 0 {
			res.NoBeats++
		}
		res.MaxBeatGapMs = max(res.MaxBeatGapMs, st.MaxBeatGapMs)
		res.Drops += st.Drops
	}
	res.ClientRSSMiB = mib(cs.Stats().RSS)
	// A stream held for Hold sees at least Hold/Heartbeat - 1 heartbeats
	// (the first may fall just before the mark), and never waits much more
	// than an interval for one.
	res.BeatsWanted = max(1, int(cfg.Hold/cfg.Heartbeat)-1)
	res.BeatsOK = res.NoBeats == 0 && res.BeatsMin >= res.BeatsWanted && res.Drops == 0 &&
		res.MaxBeatGapMs <= 2*cfg.Heartbeat.Milliseconds()
	res.TargetMet = res.Opened == s && res.PeakRSSMiB <= targetRSSMiB && res.Memory.PerStreamKiB <= targetPerStreamKiB && res.BeatsOK
	prog.Printf("streams: %d streams, node RSS %.0f MiB (peak %.0f), %.1f KiB a stream (%.1f above the empty node); heartbeats: fewest %d (want %d), %d streams without, longest gap %d ms",
		res.Memory.Streams, res.Memory.RSSMiB, res.PeakRSSMiB, res.Memory.PerStreamKiB, res.Memory.MarginalKiB, res.BeatsMin, res.BeatsWanted, res.NoBeats, res.MaxBeatGapMs)
	if !res.BeatsOK {
		return res, fmt.Errorf("streams: heartbeats did not reach every stream (fewest %d of %d wanted, %d streams without, longest gap %d ms, %d drops)",
			res.BeatsMin, res.BeatsWanted, res.NoBeats, res.MaxBeatGapMs, res.Drops)
	}
	return res, nil
}
