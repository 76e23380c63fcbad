package main

import (
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// clientProcArg, as the first argument, makes the bench a client process:
// the node phases re-execute the bench with it so that the streams' client
// side is spread over several processes (each has its own open-files limit
// and its own 127.0.0.x source address, so its own ephemeral ports). A
// client process reads commands as JSON lines on stdin and answers as JSON
// lines on stdout; it is not meant to be run by hand.
const clientProcArg = "__client"

// clientPlan is the first line a client process reads: the streams it holds.
type clientPlan struct {
	ID       int               `json:"id"`
	SourceIP string            `json:"source_ip"` // local address of its connections
	Nodes    []string          `json:"nodes"`     // base URLs
	Tokens   map[string]string `json:"tokens"`    // user -> bearer token
	Streams  []streamSpec      `json:"streams"`
	// OpenParallel is how many streams connect at once while opening.
	OpenParallel int `json:"open_parallel"`
	// Browser, when set, makes every stream reconnect as notifyd's browser
	// client does (pacer.go); without it a stream reconnects at once.
	Browser *browserModel `json:"browser,omitempty"`
}

// streamSpec is one stream of a client process.
type streamSpec struct {
	Key   int    `json:"key"` // index over all the phase's streams
	User  string `json:"user"`
	Node  int    `json:"node"`
	Start int64  `json:"start"` // first Last-Event-ID; negative: none
}

// clientCmd is a command to a client process.
type clientCmd struct {
	Op string `json:"op"`
	// resume-rate: random resumes per second over the process's streams.
	Rate float64 `json:"rate,omitempty"`
	// node-down: a node that is gone; no stream resumes on it any more.
	// node-up: it is back.
	Node int `json:"node,omitempty"`
	// wait: until every stream has received Seq, at most TimeoutMs.
	Seq       int64 `json:"seq,omitempty"`
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
	// report: include every delivery (seqs and receipt times).
	Deliveries bool `json:"deliveries,omitempty"`
}

// Client process commands.
const (
	opResumeRate = "resume-rate"
	opNodeDown   = "node-down"
	opNodeUp     = "node-up"
	opMark       = "mark" // restart heartbeat counting
	opWait       = "wait"
	opReport     = "report"
)

// clientMsg is a line from a client process.
type clientMsg struct {
	Type string `json:"type"` // opened, stats, waited, report, error
	// opened
	Opened  int     `json:"opened,omitempty"`
	Failed  int     `json:"failed,omitempty"`
	OpenSec float64 `json:"open_seconds,omitempty"`
	// stats (every second) and report
	Stats *clientStats `json:"stats,omitempty"`
	// waited
	Behind int `json:"behind,omitempty"`
	// report
	Streams []streamReport `json:"streams,omitempty"`
	// error
	Error string `json:"error,omitempty"`
}

// clientStats sums a client process's streams.
type clientStats struct {
	Open           int            `json:"open"`
	Received       int64          `json:"received"`
	Connects       int            `json:"connects"`
	ConnectErrors  int            `json:"connect_errors"`
	Resumes        int            `json:"resumes"`
	Drops          int            `json:"drops"`
	ProtocolErrors int            `json:"protocol_errors"`
	CloseReasons   map[string]int `json:"close_reasons,omitempty"`
	// Heartbeats since the last mark: the fewest any stream got, how many
	// streams got none, and the longest wait for one on any stream.
	BeatsMin      int   `json:"beats_min"`
	NoBeats       int   `json:"no_beats"`
	MaxBeatGapMs  int64 `json:"max_beat_gap_ms"`
	RSS           int64 `json:"rss"`
	GoroutinesApp int   `json:"goroutines"`
}

// streamReport is one stream at the end of a phase. Seqs and AtMicros
// (receipt times, unix microseconds) are delta-encoded.
type streamReport struct {
	Key      int                 `json:"key"`
	Stats    cluster.ReaderStats `json:"stats"`
	Pace     *PaceStats          `json:"pace,omitempty"` // with a Browser plan
	Seqs     []int64             `json:"seqs,omitempty"`
	AtMicros []int64             `json:"at_us,omitempty"`
}

// deltaEncode replaces each element after the first by its difference from
// the one before: seqs and times grow slowly, so the JSON stays short.
func deltaEncode(xs []int64) []int64 {
	out := make([]int64, len(xs))
	prev := int64(0)
	for i, x := range xs {
		out[i], prev = x-prev, x
	}
	return out
}

// deltaDecode undoes deltaEncode in place.
func deltaDecode(xs []int64) []int64 {
	for i := 1; i < len(xs); i++ {
		xs[i] += xs[i-1]
	}
	return xs
}
