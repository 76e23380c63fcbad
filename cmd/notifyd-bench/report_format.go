package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// writeProducer prints phase 3: the runs, why they went as they did, and
// the ratio of medians.
func (r *Report) writeProducer(w io.Writer, p *ProducerResult) {
	fmt.Fprintf(w, "\n3. Producer insert rate, trigger vs plain table: %d goroutines, single-row autocommit INSERTs, %.0f s per run, alternating\n",
		p.Producers, p.Seconds)
	tw := table(w)
	fmt.Fprintln(tw, "   run\ttable\tinserts/s\tinserts\tbacklog at end\tdrained in\tWAL/insert\tWAL records/insert\tWAL flushes/s\tproducer backend CPU/insert\tserver backend CPU/insert")
	for i, run := range p.Runs {
		drain := "-"
		if run.Table == "trigger" {
			drain = fmt.Sprintf("%.2f s", run.DrainSeconds)
		}
		fmt.Fprintf(tw, "   %d\t%s\t%s\t%s\t%s\t%s\t%s B\t%.1f\t%s\t%.0f µs\t%.0f µs\n", i+1, run.Table, num(run.Rate), num(float64(run.Inserts)),
			num(float64(run.BacklogAtEnd)), drain, num(run.WAL.BytesPerInsert), run.WAL.RecordsPerInsert, num(run.WAL.SyncsPerSecond),
			run.ProducerCPU, run.ServerCPU)
	}
	tw.Flush()
	fmt.Fprintln(w, "   (WAL figures are pg_stat_wal deltas: cluster-wide, so other databases' activity is included)")
	fmt.Fprintln(w, "   what the backends were doing (pg_stat_activity samples every 50 ms; idle = waiting for the client):")
	for i, run := range p.Runs {
		fmt.Fprintf(w, "     run %d %-7s producers: %s\n", i+1, run.Table, shares(run.ProducerWaits))
		if len(run.ServerWaits) > 0 {
			fmt.Fprintf(w, "     run %d %-7s server:    %s\n", i+1, run.Table, shares(run.ServerWaits))
		}
	}
	fmt.Fprintf(w, "   medians: plain %s/s, trigger %s/s; ratio trigger/plain %.2f (target >= %.2f: %s)\n",
		num(p.PlainMedian), num(p.TriggerMedian), p.Ratio, p.TargetRatio, verdict(p.TargetMet))
}

// writeCPUPerNotification turns the throughput phase's CPU into a cost
// per notification and the rate the machine's cores could sustain at that
// cost if nothing else ran and every part ran in parallel: a ceiling that
// separates "the design costs too much CPU" from "the run was disturbed".
func (r *Report) writeCPUPerNotification(w io.Writer, t *ThroughputResult) {
	i := slices.IndexFunc(r.Profiles, func(p Profile) bool { return p.Phase == phaseThroughput })
	if i < 0 || t.Notifications == 0 {
		return
	}
	p, n := r.Profiles[i], float64(t.Notifications)
	server := (p.BackendCPU["notifyd"] + p.BackendCPU["notifyd-listener"]) * 1e6 / n
	producers := p.BackendCPU[producerApp] * 1e6 / n
	process := p.ProcessCPU * 1e6 / n
	total := server + producers + process
	if total <= 0 {
		return
	}
	fmt.Fprintf(w, "   CPU per notification: %.0f µs = server's PostgreSQL backends %.0f (publish and claim) + producers' backends %.0f + this process %.0f (server Go code and client)\n",
		total, server, producers, process)
	fmt.Fprintf(w, "   so %d cores sustain at most about %s/s; the single worker's backend alone at most about %s/s\n",
		r.Environment.Cores, num(float64(r.Environment.Cores)*1e6/total), num(1e6/server))
}

// writeProfiles prints where the CPU went in each phase.
func (r *Report) writeProfiles(w io.Writer) {
	if len(r.Profiles) == 0 {
		return
	}
	fmt.Fprintln(w, "\nWhere the CPU went (CPU seconds; PostgreSQL backends from /proc, so only with a local server):")
	tw := table(w)
	fmt.Fprintln(tw, "   phase\twall\tthis process (in process: server Go + client; node phases: producers, checks)\tserver backends\tproducer backends\tlistener\tserver backends were running")
	for _, p := range r.Profiles {
		fmt.Fprintf(tw, "   %s\t%.1f s\t%.2f s\t%.2f s\t%.2f s\t%.2f s\t%s\n", p.Phase, p.Seconds, p.ProcessCPU,
			p.BackendCPU["notifyd"], p.BackendCPU[producerApp], p.BackendCPU["notifyd-listener"], shares(p.ServerStatements))
	}
	tw.Flush()
	for _, p := range r.Profiles { // CPU: running; anything else: a wait event or idle
		if ws := p.Waits["notifyd"]; len(ws) > 0 {
			fmt.Fprintf(w, "   %s: the server's backends were %s\n", p.Phase, shares(ws))
		}
	}
}

// writeLoad prints how much other work shared the machine and the
// database server, and flags runs whose figures it likely lowered.
func (r *Report) writeLoad(w io.Writer) {
	busy := r.Environment.LoadBefore > float64(r.Environment.Cores)
	parts := make([]string, len(r.Profiles))
	for i, p := range r.Profiles {
		parts[i] = fmt.Sprintf("%s %.1f (max %d)", p.Phase, p.OtherActive, p.OtherMax)
		busy = busy || p.OtherActive > 0.5
	}
	fmt.Fprintf(w, "\nother work: load average %.1f before the bench started; active backends in other databases, mean per phase: %s\n",
		r.Environment.LoadBefore, strings.Join(parts, ", "))
	if busy {
		fmt.Fprintln(w, "WARNING: other work shared the machine during this run; its figures are likely low. Rerun on a quiet machine to compare.")
	}
}

func (t *ThroughputResult) verification() string {
	if t.Verified {
		return fmt.Sprintf("all %s received exactly once, seq strictly increasing; %s",
			num(float64(t.Notifications)), t.reconnectLine())
	}
	return fmt.Sprintf("FAILED: %d inserted, %d received, %d missing, %d duplicates, %d unexpected, %d out of order; %s",
		t.Notifications, t.Received, t.Missing, t.Duplicates, t.Unexpected, t.OutOfOrder, t.reconnectLine())
}

func (t *ThroughputResult) reconnectLine() string {
	if t.Reconnects == 0 {
		return "no reconnects"
	}
	return fmt.Sprintf("%d reconnects (server closed the stream: %s)", t.Reconnects, strings.Join(t.CloseReasons, ", "))
}

func shares(ws []WaitShare) string {
	parts := make([]string, len(ws))
	for i, s := range ws {
		parts[i] = fmt.Sprintf("%s %.0f%%", s.State, s.Percent)
	}
	return strings.Join(parts, ", ")
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func settingsLine(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

// num formats x rounded to an integer with thousands separators.
func num(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
