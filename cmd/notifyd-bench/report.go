package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// Report is everything a run measured, with the environment and settings
// that produced it. Phases that did not run are nil.
type Report struct {
	cfg         config
	Environment Environment       `json:"environment"`
	Settings    map[string]string `json:"settings"` // every flag's value
	Throughput  *ThroughputResult `json:"throughput,omitempty"`
	Latency     []LatencyResult   `json:"latency,omitempty"`
	Producer    *ProducerResult   `json:"producer,omitempty"`
	Snapshot    *SnapshotResult   `json:"snapshot,omitempty"`
	Churn       *ChurnResult      `json:"churn,omitempty"`
	Streams     *StreamsResult    `json:"streams,omitempty"`
	Broadcast   *BroadcastResult  `json:"broadcast,omitempty"`
	Resume      *ResumeResult     `json:"resume,omitempty"`
	Cluster     *ClusterResult    `json:"cluster,omitempty"`
	Lived       *LivedResult      `json:"lived,omitempty"`
	Storm       *StormResult      `json:"storm,omitempty"`
	// StormReplica is the storm run without and with a read replica.
	StormReplica *StormReplicaResult `json:"storm_replica,omitempty"`
	Rolling      *RollingResult      `json:"rolling,omitempty"`
	Versus       *VersusResult       `json:"versus,omitempty"`
	Burst        *BurstResult        `json:"burst,omitempty"`
	Profiles     []Profile           `json:"profiles"`
}

func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the human summary: each phase's section, numbered as
// docs/SCALING.md quotes them, then where the CPU went and other work.
func (r *Report) WriteTable(w io.Writer) {
	e, c := r.Environment, r.cfg
	fmt.Fprintf(w, "\nnotifyd-bench report (%s)\n", e.Time.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine:    %d cores (GOMAXPROCS %d), %s, %s; client, server and PostgreSQL share them\n",
		e.Cores, e.GOMAXPROCS, e.Platform, e.GoVersion)
	fmt.Fprintf(w, "postgresql: %s at %s (%s)\n", e.PostgresVersion, e.ServerURL, joinMap(e.PostgresConfig, "=", ", "))
	if r.Throughput != nil || r.Latency != nil || r.Producer != nil || r.Snapshot != nil {
		fmt.Fprintf(w, "server:     in process, %d queue worker(s), pool %d, default worker/feed settings; database %s\n",
			c.ServerWorkers, c.ServerPool, e.Database)
	}
	if r.Streams != nil || r.Broadcast != nil || r.Resume != nil || r.Cluster != nil || r.Lived != nil || r.Storm != nil || r.Rolling != nil || r.Burst != nil {
		fmt.Fprintln(w, "nodes:      notifyd processes (the built binary), one fresh database per phase, clients in processes of their own")
	}
	if len(c.NodeEnv) > 0 || c.NotifydBin != "" {
		fmt.Fprintf(w, "EXPERIMENT: node settings %s, binary %q (empty: built from this tree)\n", c.NodeEnv.String(), c.NotifydBin)
	}
	if len(c.DBSettings) > 0 {
		fmt.Fprintf(w, "EXPERIMENT: bench database settings changed from the defaults: %s\n", c.DBSettings.String())
	}
	for _, s := range []interface{ write(io.Writer, *Report) }{r.Throughput, latencies(r.Latency), r.Producer, r.Snapshot,
		r.Churn, r.Streams, r.Broadcast, r.Resume, r.Cluster, r.Lived, r.Storm, r.StormReplica, r.Rolling, r.Versus, r.Burst} {
		if !reflect.ValueOf(s).IsNil() { // the phases that ran
			s.write(w, r)
		}
	}
	r.writeProfiles(w)
	fmt.Fprintln(w)
}

// writeTable prints rows of tab-separated cells under header, indented
// and aligned; a row may hold several lines.
func writeTable(w io.Writer, header string, rows ...string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, "   "+header)
	}
	for _, row := range rows {
		for line := range strings.SplitSeq(row, "\n") {
			fmt.Fprintln(tw, "   "+line)
		}
	}
	tw.Flush()
}

// rowsOf is one formatted row per element of xs.
func rowsOf[T any](xs []T, row func(i int, x T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = row(i, x)
	}
	return out
}

// summaryHeader and summaryRow are a table of stats.Summary rows with an
// optional target column.
const summaryHeader = "\tp50\tp90\tp99\tp99.9\tmax\tsamples"

func summaryRow(label string, s stats.Summary, target ...string) string {
	return fmt.Sprintf("%s\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%s%s", label, s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms, s.MaxMs,
		num(float64(s.Count)), strings.Join(append([]string{""}, target...), "\t"))
}

// latencyCells is p50, p90, p99 and max as table cells.
func latencyCells(s stats.Summary) string {
	return fmt.Sprintf("%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms", s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs)
}

func checkLine(c interface{ OK() bool }) string {
	if c.OK() {
		return fmt.Sprint("PASSED: ", c)
	}
	return fmt.Sprint("FAILED: ", c)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
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

// joinMap is m's entries as key+sep+value, by key, joined by comma.
func joinMap[V any](m map[string]V, sep, comma string) string {
	return strings.Join(rowsOf(slices.Sorted(maps.Keys(m)), func(_ int, k string) string { return fmt.Sprint(k, sep, m[k]) }), comma)
}

// rankedLine lists m's entries as "key value", by weight descending (then
// by key), joined by sep; "none" when m is empty.
func rankedLine[V any](m map[string]V, weight func(V) float64, sep string, value func(V) string) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(weight(m[b]), weight(m[a])), strings.Compare(a, b))
	})
	return strings.Join(rowsOf(keys, func(_ int, k string) string { return k + " " + value(m[k]) }), sep)
}

// ProcCPU is the CPU one process used during a phase's measured window.
type ProcCPU struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CorePercent is CPUSeconds over the window's length: 100 is one core.
	CorePercent float64 `json:"core_percent"`
}

func writeCPU(w io.Writer, cpu []ProcCPU) {
	if len(cpu) == 0 {
		return
	}
	total := 0.0
	for _, c := range cpu {
		total += c.CPUSeconds
	}
	fmt.Fprintf(w, "   CPU (%% of one core): %s; total %.1f s\n", strings.Join(rowsOf(cpu, func(_ int, c ProcCPU) string {
		return fmt.Sprintf("%s %.1f s (%.0f%%)", c.Name, c.CPUSeconds, c.CorePercent)
	}), ", "), total)
}

// NodeMemory is one node's resident memory and what it holds.
type NodeMemory struct {
	Node    string  `json:"node"`
	Streams int     `json:"streams"`
	RSSMiB  float64 `json:"rss_mib"`
	// PerStreamKiB is RSS over streams; MarginalKiB leaves out the
	// node's RSS at start, with no streams (BaselineMiB).
	PerStreamKiB float64 `json:"per_stream_kib"`
	BaselineMiB  float64 `json:"baseline_mib"`
	MarginalKiB  float64 `json:"marginal_kib"`
}

func newNodeMemory(node string, streams int, rss, baseline int64) NodeMemory {
	m := NodeMemory{Node: node, Streams: streams, RSSMiB: mib(rss), BaselineMiB: mib(baseline)}
	if streams > 0 {
		m.PerStreamKiB, m.MarginalKiB = float64(rss)/1024/float64(streams), float64(rss-baseline)/1024/float64(streams)
	}
	return m
}

func writeMemory(w io.Writer, title string, ms []NodeMemory) {
	if len(ms) > 0 {
		fmt.Fprintf(w, "   %s: %s\n", title, strings.Join(rowsOf(ms, func(_ int, m NodeMemory) string {
			return fmt.Sprintf("%s %.0f MiB / %s streams = %.1f KiB", m.Node, m.RSSMiB, num(float64(m.Streams)), m.PerStreamKiB)
		}), "; "))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// ratio is a/b, 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
