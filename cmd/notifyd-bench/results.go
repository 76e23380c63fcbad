package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// ProcCPU is the CPU one process used during a phase's measured window.
type ProcCPU struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CorePercent is CPUSeconds over the window's length: 100 is one core.
	CorePercent float64 `json:"core_percent"`
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

// StreamsResult is the streams phase: many idle streams on one node.
type StreamsResult struct {
	Streams     int     `json:"streams"`
	Opened      int     `json:"opened"`
	Failed      int     `json:"failed"`
	Clients     int     `json:"client_processes"`
	OpenSeconds float64 `json:"open_seconds"`
	HoldSeconds float64 `json:"hold_seconds"`
	Heartbeat   float64 `json:"heartbeat_seconds"`
	// Memory is at the end of the hold; PeakRSSMiB the most seen during it.
	Memory     NodeMemory `json:"memory"`
	PeakRSSMiB float64    `json:"peak_rss_mib"`
	// Heartbeats during the hold: the fewest any stream got, how many got
	// none, and the longest any stream waited for one.
	BeatsMin     int       `json:"heartbeats_min"`
	BeatsWanted  int       `json:"heartbeats_wanted"`
	NoBeats      int       `json:"streams_without_heartbeat"`
	MaxBeatGapMs int64     `json:"max_heartbeat_gap_ms"`
	Drops        int       `json:"drops"`
	ClientRSSMiB float64   `json:"client_rss_mib"`
	CPU          []ProcCPU `json:"cpu"`
	TargetRSSMiB float64   `json:"target_rss_mib"`
	TargetKiB    float64   `json:"target_per_stream_kib"`
	TargetMet    bool      `json:"target_met"`
	BeatsOK      bool      `json:"heartbeats_ok"`
}

// BroadcastResult is the broadcast phase: notifications to every stream
// of a node, one at a time.
type BroadcastResult struct {
	Streams    int `json:"streams"`
	Opened     int `json:"opened"`
	Broadcasts int `json:"broadcasts"`
	// LastReceipt is, per broadcast, its commit to its receipt on the
	// last stream; AllReceipts is commit to receipt on each stream.
	LastReceipt stats.Summary `json:"last_receipt"`
	AllReceipts stats.Summary `json:"all_receipts"`
	Check       cluster.Check `json:"check"`
	Memory      NodeMemory    `json:"memory"`
	CPU         []ProcCPU     `json:"cpu"`
	// NodeCPUPerBroadcastMs is the node's CPU per broadcast.
	NodeCPUPerBroadcastMs float64 `json:"node_cpu_per_broadcast_ms"`
	TargetP99Ms           float64 `json:"target_p99_ms"`
	TargetMet             bool    `json:"target_met"`
}

// ResumeRound is one resume of a stream far behind.
type ResumeRound struct {
	Behind   int     `json:"behind"`
	Received int     `json:"received"`
	FirstMs  float64 `json:"first_ms"` // request to first notification
	TotalMs  float64 `json:"total_ms"` // request to the last one
	Check    cluster.Check
}

// ResumeResult is the resume phase.
type ResumeResult struct {
	Behind    int           `json:"behind"`
	Noise     float64       `json:"noise"`
	TableRows int64         `json:"table_rows"`
	Rounds    []ResumeRound `json:"rounds"`
	MedianMs  float64       `json:"median_ms"`
	MaxMs     float64       `json:"max_ms"`
	RatePerS  float64       `json:"rate"` // notifications replayed per second, median round
	TargetMs  float64       `json:"target_ms"`
	TargetMet bool          `json:"target_met"`
	OK        bool          `json:"exactly_once"`
}

// ClusterResult is the cluster phase: nodes under load with resumes and a
// node killed.
type ClusterResult struct {
	Nodes   int `json:"nodes"`
	Streams int `json:"streams"`
	Users   int `json:"users"`
	Opened  int `json:"opened"`
	Clients int `json:"client_processes"`
	// Load.
	Seconds      float64 `json:"seconds"`
	TargetRate   float64 `json:"target_rate"`
	SQL          int64   `json:"sql_inserted"`
	HTTP         int64   `json:"http_posted"`
	HTTPRetries  int64   `json:"http_retries"`
	AchievedRate float64 `json:"achieved_rate"`
	Published    int     `json:"published"`
	Deliveries   int     `json:"deliveries"`
	DeliveryRate float64 `json:"delivery_rate"`
	DrainSeconds float64 `json:"drain_seconds"` // from the end of the load to the last stream's receipt
	// Latency is producer commit to receipt, over every delivery whose
	// commit time the bench knows.
	Latency      stats.Summary `json:"latency"`
	LatencyBasis string        `json:"latency_basis"`
	// Windows splits the latency by when the notification was committed.
	Windows []LatencyWindow `json:"latency_windows"`
	// Faults.
	Killed          string  `json:"killed,omitempty"`
	KilledAtSeconds float64 `json:"killed_at_seconds,omitempty"`
	StreamsOnKilled int     `json:"streams_on_killed,omitempty"`
	// WAL written per notification and WAL flushes per second over the
	// load and the drain (pg_stat_wal is cluster-wide).
	WALBytesPerNotification float64 `json:"wal_bytes_per_notification"`
	WALSyncsPerSecond       float64 `json:"wal_syncs_per_second"`
	// LoadStart and LoadEnd are the machine's 1-minute load average when
	// the load started and when the last stream had everything: other work
	// on a shared machine moves the latency figures most.
	LoadStart float64 `json:"loadavg1_start"`
	LoadEnd   float64 `json:"loadavg1_end"`
	// Verdict, and what happened to the streams' connections.
	StreamTally
	// Memory is every node's just before the kill (when there is one);
	// MemoryAfter the survivors' at the end, holding every stream.
	Memory      []NodeMemory `json:"memory_before_kill,omitempty"`
	MemoryAfter []NodeMemory `json:"memory_after"`
	CPU         []ProcCPU    `json:"cpu"`
}

// cpuWindow measures every process's CPU over a window.
type cpuWindow struct {
	start time.Time
	nodes []time.Duration
	self  time.Duration
}

func startCPU(e *nodeEnv, cs *fleet.Fleet) *cpuWindow {
	if cs != nil {
		cs.MarkCPU()
	}
	return &cpuWindow{start: time.Now(), nodes: e.cpu(), self: processCPU()}
}

// stop returns each process's CPU since start (a killed node's is lost).
func (w *cpuWindow) stop(e *nodeEnv, cs *fleet.Fleet) []ProcCPU {
	secs := time.Since(w.start).Seconds()
	var out []ProcCPU
	now := e.cpu()
	for i, n := range e.nodes {
		if e.nodes[i].Running() {
			out = append(out, ProcCPU{Name: "node" + itoa(i), PID: n.PID(), CPUSeconds: (now[i] - w.nodes[i]).Seconds()})
		}
	}
	if cs != nil {
		for _, c := range cs.CPU() {
			out = append(out, ProcCPU{Name: fmt.Sprintf("client %d", c.ID), PID: c.PID, CPUSeconds: c.CPU.Seconds()})
		}
	}
	out = append(out, ProcCPU{Name: "bench (producers, checks)", CPUSeconds: (processCPU() - w.self).Seconds()})
	for i := range out {
		out[i].CorePercent = 100 * out[i].CPUSeconds / secs
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// LatencyWindow is the latency of the notifications committed in one
// stretch of a run.
type LatencyWindow struct {
	FromSeconds float64       `json:"from_seconds"`
	ToSeconds   float64       `json:"to_seconds"`
	Latency     stats.Summary `json:"latency"`
}
