package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// writeNodePhases prints the phases that ran notifyd as separate processes.
func (r *Report) writeNodePhases(w io.Writer) {
	if s := r.Streams; s != nil {
		fmt.Fprintf(w, "\n4. Concurrent streams on one node: %s streams (%d client processes), held %.0f s with a heartbeat every %.0f s\n",
			num(float64(s.Streams)), s.Clients, s.HoldSeconds, s.Heartbeat)
		tw := table(w)
		fmt.Fprintf(tw, "   streams open (node's notifyd_streams_open)\t%s of %s\topened in %.1f s\n", num(float64(s.Memory.Streams)), num(float64(s.Streams)), s.OpenSeconds)
		fmt.Fprintf(tw, "   node RSS\t%.0f MiB (peak %.0f)\ttarget <= %d MiB: %s\n", s.Memory.RSSMiB, s.PeakRSSMiB, targetRSSMiB, verdict(s.PeakRSSMiB <= targetRSSMiB))
		fmt.Fprintf(tw, "   RSS per stream\t%.1f KiB (%.1f KiB above the empty node's %.0f MiB)\ttarget <= %d KiB: %s\n",
			s.Memory.PerStreamKiB, s.Memory.MarginalKiB, s.Memory.BaselineMiB, targetPerStreamKiB, verdict(s.Memory.PerStreamKiB <= targetPerStreamKiB))
		fmt.Fprintf(tw, "   heartbeats per stream during the hold\tfewest %d (want >= %d), %d streams without\tlongest wait %d ms: %s\n",
			s.BeatsMin, s.BeatsWanted, s.NoBeats, s.MaxBeatGapMs, verdict(s.BeatsOK))
		fmt.Fprintf(tw, "   client processes' RSS\t%.0f MiB\t\n", s.ClientRSSMiB)
		tw.Flush()
		writeCPU(w, s.CPU)
	}
	if b := r.Broadcast; b != nil {
		fmt.Fprintf(w, "\n5. Broadcast to every stream of one node: %s streams, %d notifications to everyone, one at a time\n",
			num(float64(b.Streams)), b.Broadcasts)
		tw := table(w)
		fmt.Fprintln(tw, "   commit to receipt\tp50\tp90\tp99\tp99.9\tmax\tsamples\ttarget")
		fmt.Fprintf(tw, "   on the last stream, per broadcast\t%s\t%d\tp99 <= %.0f ms: %s\n", summaryCells(b.LastReceipt), b.LastReceipt.Count,
			b.TargetP99Ms, verdict(b.TargetMet))
		fmt.Fprintf(tw, "   on each stream\t%s\t%d\t\n", summaryCells(b.AllReceipts), b.AllReceipts.Count)
		tw.Flush()
		fmt.Fprintf(w, "   exactly-once: %s\n", checkLine(b.Check))
		fmt.Fprintf(w, "   node CPU per broadcast: %.0f ms (fan-out to %s streams); node RSS %.0f MiB\n",
			b.NodeCPUPerBroadcastMs, num(float64(b.Streams)), b.Memory.RSSMiB)
		writeCPU(w, b.CPU)
	}
	if rs := r.Resume; rs != nil {
		fmt.Fprintf(w, "\n6. Resume far behind: a stream %s notifications behind reconnects with Last-Event-ID (%.1f others' notifications interleaved per one of its own; %s rows in the table at the end)\n",
			num(float64(rs.Behind)), rs.Noise, num(float64(rs.TableRows)))
		tw := table(w)
		fmt.Fprintln(tw, "   round\treplayed\tfirst after\tall after\texactly once")
		for i, rr := range rs.Rounds {
			fmt.Fprintf(tw, "   %d\t%s\t%.0f ms\t%.0f ms\t%v\n", i+1, num(float64(rr.Received)), rr.FirstMs, rr.TotalMs, rr.Check.OK())
		}
		tw.Flush()
		fmt.Fprintf(w, "   median %.0f ms (%s notifications/s), max %.0f ms; target median <= %.0f ms: %s\n",
			rs.MedianMs, num(rs.RatePerS), rs.MaxMs, rs.TargetMs, verdict(rs.TargetMet))
	}
	if c := r.Cluster; c != nil {
		fmt.Fprintf(w, "\n7. Cluster under load and faults: %d nodes on one database, %s streams of %s users (%d client processes)\n",
			c.Nodes, num(float64(c.Streams)), num(float64(c.Users)), c.Clients)
		tw := table(w)
		fmt.Fprintf(tw, "   load\t%s notifications in %.0f s: %s/s (target %s/s); %s over SQL, %s over HTTP (%d retried on another node)\n",
			num(float64(c.SQL+c.HTTP)), c.Seconds, num(c.AchievedRate), num(c.TargetRate), num(float64(c.SQL)), num(float64(c.HTTP)), c.HTTPRetries)
		fmt.Fprintf(tw, "   delivered\t%s events to streams, %s/s; the last stream had everything %.2f s after the load stopped\n", num(float64(c.Deliveries)), num(c.DeliveryRate), c.DrainSeconds)
		fmt.Fprintf(tw, "   faults\t%d random resumes, %d connections lost, %d failed connects; %s\n", c.Resumes, c.Drops, c.ConnectErrors, killLine(c))
		fmt.Fprintf(tw, "   WAL\t%s bytes per notification, %s flushes/s (cluster-wide)\n", num(c.WALBytesPerNotification), num(c.WALSyncsPerSecond))
		fmt.Fprintf(tw, "   machine\tload average %.1f when the load started, %.1f at the end\n", c.LoadStart, c.LoadEnd)
		tw.Flush()
		tw = table(w)
		fmt.Fprintln(tw, "   commit to receipt\tp50\tp90\tp99\tp99.9\tmax\tsamples")
		summaryRow(tw, "every delivery", c.Latency)
		for _, win := range c.Windows {
			mark := ""
			if c.Killed != "" && c.KilledAtSeconds >= win.FromSeconds && c.KilledAtSeconds < win.ToSeconds {
				mark = " (kill)"
			}
			summaryRow(tw, fmt.Sprintf("committed %.0f-%.0f s%s", win.FromSeconds, win.ToSeconds, mark), win.Latency)
		}
		tw.Flush()
		fmt.Fprintf(w, "   (%s; deliveries replayed after the kill and after resumes included)\n", c.LatencyBasis)
		fmt.Fprintf(w, "   exactly-once: %s\n", checkLine(c.Check))
		writeMemory(w, "memory before the kill", c.Memory)
		writeMemory(w, "memory at the end", c.MemoryAfter)
		writeCPU(w, c.CPU)
	}
	if l := r.Lived; l != nil {
		r.writeLived(w, l)
	}
	if s := r.Storm; s != nil {
		writeStorm(w, s)
	}
	if sr := r.StormReplica; sr != nil {
		writeStormReplica(w, sr)
	}
	if rr := r.Rolling; rr != nil {
		writeRolling(w, rr)
	}
}

func summaryCells(s stats.Summary) string {
	return fmt.Sprintf("%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms", s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms, s.MaxMs)
}

// latencyCells is p50, p90, p99 and max as table cells.
func latencyCells(s stats.Summary) string {
	return fmt.Sprintf("%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms", s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs)
}

// summaryRow prints a table row of s's percentiles and samples after
// label, and the target column if given.
func summaryRow(tw io.Writer, label string, s stats.Summary, target ...string) {
	fmt.Fprintf(tw, "   %s\t%s\t%s%s\n", label, summaryCells(s), num(float64(s.Count)), strings.Join(append([]string{""}, target...), "\t"))
}

func checkLine(c interface{ OK() bool }) string {
	s := fmt.Sprint(c)
	if c.OK() {
		return "PASSED: " + s
	}
	return "FAILED: " + s
}

func killLine(c *ClusterResult) string {
	if c.Killed == "" {
		return "no node killed"
	}
	return fmt.Sprintf("%s killed with SIGKILL at %.0f s holding %d streams", c.Killed, c.KilledAtSeconds, c.StreamsOnKilled)
}

func writeMemory(w io.Writer, title string, ms []NodeMemory) {
	if len(ms) == 0 {
		return
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s %.0f MiB / %s streams = %.1f KiB", m.Node, m.RSSMiB, num(float64(m.Streams)), m.PerStreamKiB)
	}
	fmt.Fprintf(w, "   %s: %s\n", title, strings.Join(parts, "; "))
}

func writeCPU(w io.Writer, cpu []ProcCPU) {
	if len(cpu) == 0 {
		return
	}
	cpu = slices.Clone(cpu)
	parts := make([]string, len(cpu))
	total := 0.0
	for i, c := range cpu {
		parts[i] = fmt.Sprintf("%s %.1f s (%.0f%%)", c.Name, c.CPUSeconds, c.CorePercent)
		total += c.CPUSeconds
	}
	fmt.Fprintf(w, "   CPU (%% of one core): %s; total %.1f s\n", strings.Join(parts, ", "), total)
}
