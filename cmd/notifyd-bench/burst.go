package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// Targets of the burst phase (issue 15).
const (
	targetBurstKiB          = 12      // RSS per stream after a burst of 8,000 opens
	targetBurstLargeKiB     = 10      // RSS per stream at 100,000 streams
	burstLarge              = 100_000 // streams from which the second applies
	targetBurstBroadcastP99 = 2000    // ms, commit to receipt on each of 100,000 streams
)

// The burst phase's shapes: every stream one user's, or streams spread
// over users holding -burst-per-user each.
const (
	burstOneUser   = "one"
	burstManyUsers = "many"
)

// BurstResult is the burst phase: one node, streams opened all at once.
type BurstResult struct {
	IdleSeconds float64    `json:"idle_seconds"`
	Heartbeat   float64    `json:"heartbeat_seconds"`
	Runs        []BurstRun `json:"runs"`
	TargetMet   bool       `json:"target_met"`
}

// BurstRun is one burst: Streams opened by Clients processes at once, for
// Users users.
type BurstRun struct {
	Shape       string  `json:"shape"` // one or many
	Streams     int     `json:"streams"`
	Users       int     `json:"users"`
	Clients     int     `json:"client_processes"`
	Opened      int     `json:"opened"`
	OpenSeconds float64 `json:"open_seconds"`
	// Memory: the empty node, the peak while opening, once every stream
	// is open, and after IdleSeconds more with heartbeats only.
	Empty      BurstMemory `json:"empty"`
	PeakRSSMiB float64     `json:"peak_rss_mib"`
	Opening    BurstMemory `json:"last_opened"` // as the last stream opened
	After      BurstMemory `json:"after_burst"` // SettleSeconds later
	Settle     float64     `json:"settle_seconds"`
	Idle       BurstMemory `json:"after_idle"`
	// CPU of the node: opening (per stream), idle (heartbeats; per
	// stream and second) and per broadcast.
	OpenCPUSeconds      float64 `json:"open_cpu_seconds"`
	OpenCPUPerStreamUs  float64 `json:"open_cpu_per_stream_us"`
	IdleCPUSeconds      float64 `json:"idle_cpu_seconds"`
	IdleCPUPerStreamUs  float64 `json:"idle_cpu_per_stream_per_s_us"`
	BroadcastCPUSeconds float64 `json:"broadcast_cpu_seconds"`
	// Heartbeats over the idle window.
	BeatsMin     int   `json:"heartbeats_min"`
	BeatsWanted  int   `json:"heartbeats_wanted"`
	NoBeats      int   `json:"streams_without_heartbeat"`
	MaxBeatGapMs int64 `json:"max_heartbeat_gap_ms"`
	BeatsOK      bool  `json:"heartbeats_ok"`
	// Broadcasts to everyone after the idle window: commit to receipt on
	// the last stream of each, and on every stream.
	Broadcasts   int           `json:"broadcasts"`
	LastReceipt  stats.Summary `json:"last_receipt"`
	AllReceipts  stats.Summary `json:"all_receipts"`
	Check        cluster.Check `json:"check"`
	ClientRSSMiB float64       `json:"client_rss_mib"`
	// TargetKiB is the RSS per stream this size must stay within (after
	// the burst and after idle); TargetMet covers it, every stream open,
	// the heartbeats and, at 100,000 streams, the broadcast's p99.
	TargetKiB float64 `json:"target_kib"`
	MemoryMet bool    `json:"memory_met"`
	TargetMet bool    `json:"target_met"`
}

// runBurstPhase runs a burst for each size of -burst-streams and each
// shape of -burst-users, -burst-rounds times.
func runBurstPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, stderr io.Writer) (*BurstResult, error) {
	res := &BurstResult{IdleSeconds: cfg.BurstIdle.Seconds(), Heartbeat: cfg.BurstHeartbeat.Seconds(), TargetMet: true}
	if err := raiseOpenFiles(uint64(cfg.BurstSizes[len(cfg.BurstSizes)-1]) + burstSpareFiles); err != nil {
		return nil, err
	}
	for _, n := range cfg.BurstSizes {
		for _, shape := range cfg.BurstShapes {
			for round := range cfg.BurstRounds {
				run, err := runBurst(ctx, cfg, nr, prog, stderr, int(n), shape, uint64(round+1))
				if run != nil {
					res.Runs = append(res.Runs, *run)
					res.TargetMet = res.TargetMet && run.TargetMet
				}
				if err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// raiseOpenFiles lifts this process's open-files limit to at least n: the
// node and the client processes inherit it, and a node holding n streams
// needs n descriptors. The soft limit can always go up to the hard one;
// raising the hard one needs CAP_SYS_RESOURCE (root outside a container
// that drops it).
func raiseOpenFiles(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("burst: open-files limit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("burst: %d streams need an open-files limit of %d, the hard limit is %d and this process may not raise it (%w; it needs CAP_SYS_RESOURCE): "+
			"choose -burst-streams below %d", n-burstSpareFiles, n, lim.Max, err, lim.Max-burstSpareFiles)
	}
	return nil
}

// burstSpareFiles is the node's descriptors besides its streams: its
// database connections, listener and files, with room to spare.
const burstSpareFiles = 1000

// runBurst starts a node, opens n streams on it as fast as the client
// processes can, then reads its memory right away and after the idle
// window, checks the heartbeats and broadcasts to everyone.
func runBurst(ctx context.Context, cfg config, nr *nodeRun, prog *progress, stderr io.Writer, n int, shape string, seed uint64) (*BurstRun, error) {
	users := 1
	if shape == burstManyUsers {
		users = (n + cfg.BurstPerUser - 1) / cfg.BurstPerUser
	}
	run := &BurstRun{Shape: shape, Streams: n, Users: users, Broadcasts: cfg.BurstBroadcasts, TargetKiB: targetBurstKiB}
	if n >= burstLarge {
		run.TargetKiB = targetBurstLargeKiB
	}
	prog.Printf("burst: %d streams of %d user(s) opened at once on one node", n, users)
	perUser := strconv.Itoa(max(20, (n+users-1)/users))
	e, err := nr.startNodes(ctx, 1, map[string]string{
		"NOTIFY_MAX_STREAMS":          strconv.Itoa(n + 1000),
		"NOTIFY_MAX_STREAMS_PER_USER": perUser,
		"NOTIFY_HEARTBEAT_INTERVAL":   cfg.BurstHeartbeat.String(),
		"NOTIFY_CONN_TIMEOUT":         max(60*time.Second, 4*cfg.BurstHeartbeat).String(),
	})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	node := e.nodes[0]
	if run.Empty, err = readBurstMemory(ctx, e); err != nil {
		return nil, err
	}
	pop := cluster.NewPopulation(rand.New(rand.NewPCG(seed, seed)), "burst", users, 10, 2)
	l, err := e.newLayout(pop, n, -1, nil)
	if err != nil {
		return nil, err
	}
	for p := range l.plans {
		l.plans[p].OpenParallel = len(l.plans[p].Streams) // all at once
		if cfg.BurstParallel > 0 {
			l.plans[p].OpenParallel = cfg.BurstParallel
		}
	}
	run.Clients = len(l.plans)

	peak := watchPeakRSS(node)
	cpu0, _ := node.CPUTime()
	cs, opened, secs, err := l.open(ctx, prog, phaseBurst, nil, stderr)
	run.PeakRSSMiB = peak()
	if err != nil {
		return run, err
	}
	defer cs.Close()
	cpu1, _ := node.CPUTime()
	run.Opened, run.OpenSeconds = opened, secs
	run.OpenCPUSeconds = (cpu1 - cpu0).Seconds()
	run.OpenCPUPerStreamUs = run.OpenCPUSeconds * 1e6 / float64(max(1, opened))
	if run.Opening, err = readBurstMemory(ctx, e); err != nil {
		return run, err
	}
	prog.Printf("burst: %d open in %.1f s; as the last opened: %s", opened, secs, run.Opening)
	if err := sleepCtx(ctx, cfg.BurstSettle); err != nil {
		return run, err
	}
	run.Settle = cfg.BurstSettle.Seconds()
	if run.After, err = readBurstMemory(ctx, e); err != nil {
		return run, err
	}
	prog.Printf("burst: %s later: %s", cfg.BurstSettle, run.After)

	// Idle: heartbeats only (the settle included).
	if err := cs.MarkHeartbeats(); err != nil {
		return run, err
	}
	stop := prog.Every(10*time.Second, func() string {
		rss, _ := node.RSS()
		return fmt.Sprintf("burst: idle, node RSS %.0f MiB (%.1f KiB a stream)", mib(rss), float64(rss)/1024/float64(max(1, opened)))
	})
	err = sleepCtx(ctx, cfg.BurstIdle-cfg.BurstSettle)
	stop()
	if err != nil {
		return run, err
	}
	cpu2, _ := node.CPUTime()
	run.IdleCPUSeconds = (cpu2 - cpu1).Seconds()
	run.IdleCPUPerStreamUs = run.IdleCPUSeconds * 1e6 / float64(max(1, opened)) / cfg.BurstIdle.Seconds()
	if run.Idle, err = readBurstMemory(ctx, e); err != nil {
		return run, err
	}
	st := cs.Stats()
	run.BeatsMin, run.NoBeats, run.MaxBeatGapMs = st.BeatsMin, st.NoBeats, st.MaxBeatGapMs
	run.BeatsWanted = max(1, int((cfg.BurstIdle-cfg.BurstSettle)/cfg.BurstHeartbeat)-1)
	run.BeatsOK = run.NoBeats == 0 && run.BeatsMin >= run.BeatsWanted && st.Drops == 0 &&
		run.MaxBeatGapMs <= 2*cfg.BurstHeartbeat.Milliseconds()
	prog.Printf("burst: after %s idle: %s; heartbeats fewest %d (want %d), %d streams without, longest gap %d ms",
		cfg.BurstIdle, run.Idle, run.BeatsMin, run.BeatsWanted, run.NoBeats, run.MaxBeatGapMs)

	if err := burstBroadcast(ctx, cfg, e, cs, l, run, prog); err != nil {
		return run, err
	}
	run.ClientRSSMiB = mib(cs.Stats().RSS)
	run.MemoryMet = run.After.PerStreamKiB <= run.TargetKiB && run.Idle.PerStreamKiB <= run.TargetKiB
	run.TargetMet = run.Opened == n && run.MemoryMet && run.BeatsOK && run.Check.OK() &&
		(n < burstLarge || run.AllReceipts.P99Ms <= targetBurstBroadcastP99)
	return run, nil
}

// burstBroadcast publishes cfg.BurstBroadcasts notifications to everyone,
// cfg.BurstBroadcastInterval apart, and measures each one's commit to its
// receipt on every stream, which must receive each exactly once.
func burstBroadcast(ctx context.Context, cfg config, e *nodeEnv, cs *fleet.Fleet, l *layout, run *BurstRun, prog *progress) error {
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return err
	}
	cpu0, _ := e.nodes[0].CPUTime()
	commits := map[string]int64{} // unix nanoseconds
	for range cfg.BurstBroadcasts {
		if err := sleepCtx(ctx, cfg.BurstBroadcastInterval); err != nil {
			return err
		}
		ids, err := cluster.Insert(ctx, e.admin, []notify.Target{{}}, "burst", "")
		if err != nil {
			return fmt.Errorf("burst: broadcast: %w", err)
		}
		commits[ids[0]] = time.Now().UnixNano()
	}
	sentinel, err := cluster.PublishSentinel(ctx, e.admin, cfg.Timeout)
	if err != nil {
		return err
	}
	if behind, err := cs.WaitSeq(ctx, sentinel, cfg.Timeout); err != nil {
		return fmt.Errorf("burst: %d streams did not receive every broadcast: %w", behind, err)
	}
	cpu1, _ := e.nodes[0].CPUTime()
	run.BroadcastCPUSeconds = (cpu1 - cpu0).Seconds()
	var tally StreamTally
	cd, err := checkStreams(ctx, e, cs, l, start, &tally)
	if err != nil {
		return err
	}
	run.Check = tally.Check
	last := map[int64]time.Duration{} // per broadcast seq: its latest receipt
	var all []time.Duration
	for k := range l.ids {
		cd.deliveries(k, commits, func(seq, at, c int64) {
			all = append(all, time.Duration(at-c))
			last[seq] = max(last[seq], time.Duration(at-c))
		})
	}
	run.LastReceipt, run.AllReceipts = stats.Summarize(slices.Collect(maps.Values(last))), stats.Summarize(all)
	prog.Printf("burst: %d broadcasts: commit to each stream p50 %.0f ms, p99 %.0f ms; to the last stream p50 %.0f ms, max %.0f ms; %s",
		cfg.BurstBroadcasts, run.AllReceipts.P50Ms, run.AllReceipts.P99Ms, run.LastReceipt.P50Ms, run.LastReceipt.MaxMs, run.Check)
	return exactlyOnce(prog, phaseBurst, run.Check)
}

// watchPeakRSS samples node's RSS every 200 ms until the returned function
// is called, which returns the highest seen, in MiB.
func watchPeakRSS(node *cluster.Node) func() float64 {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak int64
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := node.RSS(); err == nil {
				peak = max(peak, rss)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() float64 {
		close(done)
		wg.Wait()
		return mib(peak)
	}
}
