package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

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

// burstMetrics are the samples BurstMemory is read from.
var burstMetrics = []string{"notifyd_streams_open", "go_goroutines", "go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes",
	"go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_next_gc_bytes",
	"go_memstats_sys_bytes"}

// readBurstMemory reads the node's RSS and its runtime's memory figures.
func readBurstMemory(ctx context.Context, e *nodeEnv) (BurstMemory, error) {
	node := e.nodes[0]
	samples, err := cluster.Samples(ctx, e.http, node.URL(), burstMetrics...)
	if err != nil {
		return BurstMemory{}, err
	}
	v := map[string]float64{}
	for _, s := range samples {
		v[s.Name] += s.Value
	}
	rss, err := node.RSS()
	if err != nil {
		return BurstMemory{}, err
	}
	m := BurstMemory{Streams: int(v["notifyd_streams_open"]), Goroutines: int(v["go_goroutines"]), RSSMiB: mib(rss),
		HeapAllocMiB: v["go_memstats_heap_alloc_bytes"] / (1 << 20), HeapInuseMiB: v["go_memstats_heap_inuse_bytes"] / (1 << 20),
		HeapIdleMiB: v["go_memstats_heap_idle_bytes"] / (1 << 20), ReleasedMiB: v["go_memstats_heap_released_bytes"] / (1 << 20),
		StackMiB: v["go_memstats_stack_inuse_bytes"] / (1 << 20), NextGCMiB: v["go_memstats_next_gc_bytes"] / (1 << 20),
		SysMiB: v["go_memstats_sys_bytes"] / (1 << 20)}
	if m.Streams > 0 {
		m.PerStreamKiB = m.RSSMiB * 1024 / float64(m.Streams)
	}
	return m, nil
}

func (m BurstMemory) String() string {
	return fmt.Sprintf("RSS %.0f MiB (%.1f KiB a stream); heap in use %.0f MiB (live+garbage %.0f, next GC at %.0f), idle not released %.0f MiB, stacks %.0f MiB; %d goroutines",
		m.RSSMiB, m.PerStreamKiB, m.HeapInuseMiB, m.HeapAllocMiB, m.NextGCMiB, m.HeapIdleMiB-m.ReleasedMiB, m.StackMiB, m.Goroutines)
}

// perStream is x MiB over the run's streams, in KiB.
func (r BurstRun) perStream(x float64) float64 { return x * 1024 / float64(max(1, r.Opened)) }

func (b *BurstResult) write(w io.Writer, _ *Report) {
	fmt.Fprintf(w, "\n11. Bursts of streams on one node: opened at once, memory right after and after %.0f s idle (heartbeat every %.0f s), then broadcasts\n",
		b.IdleSeconds, b.Heartbeat)
	for _, r := range b.Runs {
		fmt.Fprintf(w, "   %s streams of %s user(s), %d client processes: %s open in %.1f s (node CPU %.1f s, %.0f µs a stream)\n",
			num(float64(r.Streams)), num(float64(r.Users)), r.Clients, num(float64(r.Opened)), r.OpenSeconds, r.OpenCPUSeconds, r.OpenCPUPerStreamUs)
		row := func(label string, m BurstMemory) string {
			return fmt.Sprintf("%s\t%.0f MiB\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%s", label, m.RSSMiB, r.perStream(m.RSSMiB),
				r.perStream(m.HeapInuseMiB), r.perStream(m.HeapAllocMiB), r.perStream(m.HeapIdleMiB-m.ReleasedMiB), r.perStream(m.StackMiB), num(float64(m.Goroutines)))
		}
		writeTable(w, "node memory\tRSS\ta stream\theap in use\t(live+garbage)\tidle, kept\tstacks\tgoroutines",
			fmt.Sprintf("empty node\t%.0f MiB\t\t\t\t\t\t%s", r.Empty.RSSMiB, num(float64(r.Empty.Goroutines))),
			fmt.Sprintf("peak while opening\t%.0f MiB\t%.1f KiB\t\t\t\t\t", r.PeakRSSMiB, r.perStream(r.PeakRSSMiB)),
			row("as the last stream opened", r.Opening), row(fmt.Sprintf("after the burst (%.0f s later)", r.Settle), r.After),
			row(fmt.Sprintf("after %.0f s idle", b.IdleSeconds), r.Idle))
		fmt.Fprintf(w, "   RSS per stream target <= %.0f KiB (after the burst and idle): %s\n", r.TargetKiB, verdict(r.MemoryMet))
		fmt.Fprintf(w, "   heartbeats over the idle window: fewest %d (want >= %d), %d streams without, longest wait %d ms: %s\n",
			r.BeatsMin, r.BeatsWanted, r.NoBeats, r.MaxBeatGapMs, verdict(r.BeatsOK))
		target := ""
		if r.Streams >= burstLarge {
			target = fmt.Sprintf("p99 <= %d ms: %s", targetBurstBroadcastP99, verdict(r.AllReceipts.P99Ms <= targetBurstBroadcastP99))
		}
		writeTable(w, fmt.Sprintf("%d broadcasts, commit to receipt", r.Broadcasts)+summaryHeader+"\ttarget",
			summaryRow("on each stream", r.AllReceipts, target), summaryRow("on the last stream, per broadcast", r.LastReceipt, ""))
		fmt.Fprintf(w, "   exactly-once: %s\n", checkLine(r.Check))
		fmt.Fprintf(w, "   node CPU: idle %.1f s over %.0f s (%.2f µs a stream a second), broadcasts %.1f s (%.1f µs a delivery); client processes' RSS %.0f MiB\n",
			r.IdleCPUSeconds, b.IdleSeconds, r.IdleCPUPerStreamUs, r.BroadcastCPUSeconds,
			r.BroadcastCPUSeconds*1e6/float64(max(1, r.Opened*(r.Broadcasts+1))), r.ClientRSSMiB)
	}
	if len(b.Runs) > 1 {
		writeBurstMedians(w, b.Runs)
	}
}

// writeBurstMedians prints, per size and shape, the medians of the runs'
// RSS per stream.
func writeBurstMedians(w io.Writer, runs []BurstRun) {
	type key struct {
		n     int
		shape string
	}
	var order []key
	after, idle := map[key][]float64{}, map[key][]float64{}
	for _, r := range runs {
		k := key{r.Streams, r.Shape}
		if _, ok := after[k]; !ok {
			order = append(order, k)
		}
		after[k], idle[k] = append(after[k], r.After.PerStreamKiB), append(idle[k], r.Idle.PerStreamKiB)
	}
	rows := rowsOf(order, func(_ int, k key) string {
		return fmt.Sprintf("%s, %s user(s)\t%d\t%.1f KiB\t%.1f KiB\t%s", num(float64(k.n)), k.shape, len(after[k]),
			stats.Median(after[k]), stats.Median(idle[k]), strings.Trim(fmt.Sprintf("%.1f", after[k]), "[]"))
	})
	writeTable(w, "medians\truns\tRSS a stream after the burst\tafter idle\teach run (after the burst)", rows...)
}
