package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
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
	Runs      []BurstRun `json:"runs"`
	TargetMet bool       `json:"target_met"`
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
	// Memory: the empty node, the peak while opening, as the last stream
	// opened, -burst-settle later, and after the idle time.
	Empty      BurstMemory `json:"empty"`
	PeakRSSMiB float64     `json:"peak_rss_mib"`
	Opening    BurstMemory `json:"last_opened"`
	After      BurstMemory `json:"after_burst"`
	Idle       BurstMemory `json:"after_idle"`
	// CPU of the node: opening (per stream), idle (heartbeats; per
	// stream and second) and the broadcasts.
	OpenCPUSeconds      float64 `json:"open_cpu_seconds"`
	OpenCPUPerStreamUs  float64 `json:"open_cpu_per_stream_us"`
	IdleCPUSeconds      float64 `json:"idle_cpu_seconds"`
	IdleCPUPerStreamUs  float64 `json:"idle_cpu_per_stream_per_s_us"`
	BroadcastCPUSeconds float64 `json:"broadcast_cpu_seconds"`
	Heartbeats                  // over the idle time after -burst-settle
	Broadcasts                  // to everyone after the idle time
	ClientRSSMiB        float64 `json:"client_rss_mib"`
	// TargetKiB is the RSS per stream this size must stay within (after
	// the burst and after idle); TargetMet covers it, every stream open,
	// the heartbeats and, at 100,000 streams, the broadcast's p99.
	TargetKiB float64 `json:"target_kib"`
	MemoryMet bool    `json:"memory_met"`
	TargetMet bool    `json:"target_met"`
}

// runBurstPhase runs a burst for each size of -burst-streams and each
// shape of -burst-users, -burst-rounds times.
func (nr *nodeRun) runBurstPhase(ctx context.Context) (*BurstResult, error) {
	cfg := nr.cfg
	res := &BurstResult{TargetMet: true}
	if err := raiseOpenFiles(uint64(cfg.BurstSizes[len(cfg.BurstSizes)-1]) + burstSpareFiles); err != nil {
		return nil, err
	}
	for _, n := range cfg.BurstSizes {
		for _, shape := range cfg.BurstShapes {
			for round := range cfg.BurstRounds {
				run, err := runBurst(ctx, nr, int(n), shape, uint64(round+1))
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
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}); err != nil {
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
func runBurst(ctx context.Context, nr *nodeRun, n int, shape string, seed uint64) (*BurstRun, error) {
	cfg, prog := nr.cfg, nr.prog
	users := 1
	if shape == burstManyUsers {
		users = (n + cfg.BurstPerUser - 1) / cfg.BurstPerUser
	}
	run := &BurstRun{Shape: shape, Streams: n, Users: users, TargetKiB: targetBurstKiB}
	if n >= burstLarge {
		run.TargetKiB = targetBurstLargeKiB
	}
	prog.Printf("burst: %d streams of %d user(s) opened at once on one node", n, users)
	env := heartbeatEnv(cfg.BurstHeartbeat)
	env["NOTIFY_MAX_STREAMS_PER_USER"] = strconv.Itoa(max(20, (n+users-1)/users))
	e, l, err := nr.oneNode(ctx, n, users, seed, "burst", env)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	node := e.nodes[0]
	if run.Empty, err = readBurstMemory(ctx, e); err != nil {
		return nil, err
	}
	for p := range l.plans {
		l.plans[p].OpenParallel = len(l.plans[p].Streams) // all at once
		if cfg.BurstParallel > 0 {
			l.plans[p].OpenParallel = cfg.BurstParallel
		}
	}
	run.Clients = len(l.plans)

	peak := watchPeakRSS(node, 200*time.Millisecond)
	cpu0, _ := node.CPUTime()
	cs, err := l.open(ctx, phaseBurst, nil, &run.Opened, &run.OpenSeconds)
	run.PeakRSSMiB = peak()
	if err != nil {
		return run, err
	}
	defer cs.Close()
	cpu1, _ := node.CPUTime()
	run.OpenCPUSeconds = (cpu1 - cpu0).Seconds()
	run.OpenCPUPerStreamUs = run.OpenCPUSeconds * 1e6 / float64(max(1, run.Opened))
	if run.Opening, err = readBurstMemory(ctx, e); err != nil {
		return run, err
	}
	prog.Printf("burst: as the last opened: %s", run.Opening)
	if err := sleepCtx(ctx, cfg.BurstSettle); err != nil {
		return run, err
	}
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
		return fmt.Sprintf("burst: idle, node RSS %.0f MiB (%.1f KiB a stream)", mib(rss), float64(rss)/1024/float64(max(1, run.Opened)))
	})
	err = sleepCtx(ctx, cfg.BurstIdle-cfg.BurstSettle)
	stop()
	if err != nil {
		return run, err
	}
	cpu2, _ := node.CPUTime()
	run.IdleCPUSeconds = (cpu2 - cpu1).Seconds()
	run.IdleCPUPerStreamUs = run.IdleCPUSeconds * 1e6 / float64(max(1, run.Opened)) / cfg.BurstIdle.Seconds()
	if run.Idle, err = readBurstMemory(ctx, e); err != nil {
		return run, err
	}
	run.Heartbeats = heartbeats(cs.Stats(), cfg.BurstIdle-cfg.BurstSettle, cfg.BurstHeartbeat)
	prog.Printf("burst: after %s idle: %s; heartbeats %s", cfg.BurstIdle, run.Idle, run.Heartbeats)

	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return run, err
	}
	cpu3, _ := node.CPUTime()
	run.Broadcasts, err = e.broadcast(ctx, cs, l, start, cfg.BurstBroadcasts, cfg.BurstBroadcastInterval, phaseBurst, func() {
		cpu4, _ := node.CPUTime()
		run.BroadcastCPUSeconds = (cpu4 - cpu3).Seconds()
	})
	if err != nil {
		return run, err
	}
	run.ClientRSSMiB = mib(cs.Stats().RSS)
	run.MemoryMet = run.After.PerStreamKiB <= run.TargetKiB && run.Idle.PerStreamKiB <= run.TargetKiB
	run.TargetMet = run.Opened == n && run.MemoryMet && run.BeatsOK && run.Check.OK() &&
		(n < burstLarge || run.AllReceipts.P99Ms <= targetBurstBroadcastP99)
	return run, nil
}

// BurstMemory is a node's memory at one moment: its RSS and, from the Go
// runtime's figures on /metrics, where it goes. RSS is roughly the heap's
// in-use spans, the stacks, the heap's idle spans not yet returned to the
// OS (HeapIdle - HeapReleased) and the runtime's own structures.
type BurstMemory struct {
	Streams      int     `json:"streams"`
	Goroutines   int     `json:"goroutines"`
	RSSMiB       float64 `json:"rss_mib"`
	PerStreamKiB float64 `json:"per_stream_kib"`
	HeapAllocMiB float64 `json:"heap_alloc_mib"` // live and not yet collected objects
	HeapInuseMiB float64 `json:"heap_inuse_mib"` // spans holding objects
	HeapIdleMiB  float64 `json:"heap_idle_mib"`  // free spans, returned to the OS or not
	ReleasedMiB  float64 `json:"heap_released_mib"`
	StackMiB     float64 `json:"stack_inuse_mib"`
	NextGCMiB    float64 `json:"next_gc_mib"`
	SysMiB       float64 `json:"sys_mib"`
}

// readBurstMemory reads the node's RSS and its runtime's memory figures.
func readBurstMemory(ctx context.Context, e *nodeEnv) (BurstMemory, error) {
	samples, err := cluster.Samples(ctx, e.http, e.nodes[0].URL(), "notifyd_streams_open", "go_goroutines", "go_memstats_heap_alloc_bytes",
		"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes",
		"go_memstats_next_gc_bytes", "go_memstats_sys_bytes")
	if err != nil {
		return BurstMemory{}, err
	}
	v := map[string]float64{}
	for _, s := range samples {
		v[s.Name] += s.Value
	}
	in := func(name string) float64 { return v["go_memstats_"+name+"_bytes"] / (1 << 20) }
	rss, err := e.nodes[0].RSS()
	m := BurstMemory{Streams: int(v["notifyd_streams_open"]), Goroutines: int(v["go_goroutines"]), RSSMiB: mib(rss), HeapAllocMiB: in("heap_alloc"),
		HeapInuseMiB: in("heap_inuse"), HeapIdleMiB: in("heap_idle"), ReleasedMiB: in("heap_released"), StackMiB: in("stack_inuse"),
		NextGCMiB: in("next_gc"), SysMiB: in("sys")}
	if m.Streams > 0 {
		m.PerStreamKiB = m.RSSMiB * 1024 / float64(m.Streams)
	}
	return m, err
}

func (m BurstMemory) String() string {
	return fmt.Sprintf("RSS %.0f MiB (%.1f KiB a stream); heap in use %.0f MiB (live+garbage %.0f, next GC at %.0f), idle not released %.0f MiB, stacks %.0f MiB; %d goroutines",
		m.RSSMiB, m.PerStreamKiB, m.HeapInuseMiB, m.HeapAllocMiB, m.NextGCMiB, m.HeapIdleMiB-m.ReleasedMiB, m.StackMiB, m.Goroutines)
}

func (b *BurstResult) write(w io.Writer, rep *Report) {
	idle := rep.cfg.BurstIdle.Seconds()
	fmt.Fprintf(w, "\n11. Bursts of streams on one node: opened at once, memory right after and after %.0f s idle (heartbeat every %.0f s), then broadcasts\n",
		idle, rep.cfg.BurstHeartbeat.Seconds())
	for _, r := range b.Runs {
		fmt.Fprintf(w, "   %s streams of %s user(s), %d client processes: %s open in %.1f s (node CPU %.1f s, %.0f µs a stream)\n",
			num(float64(r.Streams)), num(float64(r.Users)), r.Clients, num(float64(r.Opened)), r.OpenSeconds, r.OpenCPUSeconds, r.OpenCPUPerStreamUs)
		perStream := func(x float64) float64 { return x * 1024 / float64(max(1, r.Opened)) }
		row := func(label string, m BurstMemory) string {
			return fmt.Sprintf("%s\t%.0f MiB\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%s", label, m.RSSMiB, perStream(m.RSSMiB),
				perStream(m.HeapInuseMiB), perStream(m.HeapAllocMiB), perStream(m.HeapIdleMiB-m.ReleasedMiB), perStream(m.StackMiB), num(float64(m.Goroutines)))
		}
		writeTable(w, "node memory\tRSS\ta stream\theap in use\t(live+garbage)\tidle, kept\tstacks\tgoroutines",
			fmt.Sprintf("empty node\t%.0f MiB\t\t\t\t\t\t%s", r.Empty.RSSMiB, num(float64(r.Empty.Goroutines))),
			fmt.Sprintf("peak while opening\t%.0f MiB\t%.1f KiB\t\t\t\t\t", r.PeakRSSMiB, perStream(r.PeakRSSMiB)),
			row("as the last stream opened", r.Opening), row(fmt.Sprintf("after the burst (%.0f s later)", rep.cfg.BurstSettle.Seconds()), r.After),
			row(fmt.Sprintf("after %.0f s idle", idle), r.Idle))
		fmt.Fprintf(w, "   RSS per stream target <= %.0f KiB (after the burst and idle): %s\n", r.TargetKiB, verdict(r.MemoryMet))
		fmt.Fprintf(w, "   heartbeats over the idle window: %s\n", r.Heartbeats)
		target := ""
		if r.Streams >= burstLarge {
			target = fmt.Sprintf("p99 <= %d ms: %s", targetBurstBroadcastP99, verdict(r.AllReceipts.P99Ms <= targetBurstBroadcastP99))
		}
		r.Broadcasts.write(w, fmt.Sprintf("%d broadcasts, commit to receipt", r.Broadcasts.Broadcasts), target, "")
		fmt.Fprintf(w, "   node CPU: idle %.1f s over %.0f s (%.2f µs a stream a second), broadcasts %.1f s (%.1f µs a delivery); client processes' RSS %.0f MiB\n",
			r.IdleCPUSeconds, idle, r.IdleCPUPerStreamUs, r.BroadcastCPUSeconds,
			r.BroadcastCPUSeconds*1e6/float64(max(1, r.Opened*(r.Broadcasts.Broadcasts+1))), r.ClientRSSMiB)
	}
	if len(b.Runs) < 2 {
		return
	}
	// The medians, per size and shape, of the runs' RSS per stream.
	type key struct {
		n     int
		shape string
	}
	var order []key
	after, idleKiB := map[key][]float64{}, map[key][]float64{}
	for _, r := range b.Runs {
		k := key{r.Streams, r.Shape}
		if _, ok := after[k]; !ok {
			order = append(order, k)
		}
		after[k], idleKiB[k] = append(after[k], r.After.PerStreamKiB), append(idleKiB[k], r.Idle.PerStreamKiB)
	}
	writeTable(w, "medians\truns\tRSS a stream after the burst\tafter idle\teach run (after the burst)", rowsOf(order, func(_ int, k key) string {
		return fmt.Sprintf("%s, %s user(s)\t%d\t%.1f KiB\t%.1f KiB\t%s", num(float64(k.n)), k.shape, len(after[k]),
			stats.Median(after[k]), stats.Median(idleKiB[k]), strings.Trim(fmt.Sprintf("%.1f", after[k]), "[]"))
	})...)
}
