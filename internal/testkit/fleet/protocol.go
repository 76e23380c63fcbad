// Package fleet holds many stream readers (cluster.Reader) in child
// processes, for load tests with more streams than one process should
// hold: each process has its own open-files limit and its own 127.0.x.x
// source address, so its own ephemeral ports.
//
// The parent calls Start with one Plan per process (the streams it holds,
// their identities' tokens and the nodes) and then drives them all through
// the returned Fleet: take a node out of rotation, resume streams at
// random, wait until every stream has a seq, collect what each received.
// A child process is the parent's own executable run again with ChildArg as
// its first argument, so the program's main must begin with
//
//	if len(os.Args) > 1 && os.Args[1] == fleet.ChildArg {
//		err := fleet.RunChild(ctx, os.Stdin, os.Stdout)
//		…
//	}
//
// Parent and child speak JSON lines over the child's stdin and stdout.
package fleet

import (
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// ChildArg, as the first argument, makes a program a client process (see
// the package doc); it is not meant to be given by hand.
const ChildArg = "__client"

// Plan is one client process's work, the first line it reads: the
// streams it holds.
type Plan struct {
	ID       int               `json:"id"`
	SourceIP string            `json:"source_ip"` // local address of its connections
	Nodes    []string          `json:"nodes"`     // base URLs
	Tokens   map[string]string `json:"tokens"`    // user -> bearer token
	Streams  []Stream          `json:"streams"`
	// OpenParallel is how many streams connect at once while opening.
	OpenParallel int `json:"open_parallel"`
	// Browser, when set, makes every stream reconnect as notifyd's browser
	// client does (pacer.go); without it a stream reconnects at once.
	Browser *Browser `json:"browser,omitempty"`
	// LeastConnections makes a stream that moves pick the node up holding
	// the fewest of this process's streams (cluster.Nodes.PickLeastConnections);
	// each process holds a share of every node's, so it stands for the
	// whole, as each worker of a least_conn nginx does. Otherwise: at random.
	LeastConnections bool `json:"least_connections,omitempty"`
}

// Stream is one stream of a client process.
type Stream struct {
	Key   int    `json:"key"` // the caller's index over all its streams
	User  string `json:"user"`
	Node  int    `json:"node"`
	Start int64  `json:"start"` // first Last-Event-ID; negative: none
}

// command is a command to a client process.
type command struct {
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

// message is a line from a client process.
type message struct {
	Type string `json:"type"` // opened, stats, waited, report, error
	// opened
	Opened  int     `json:"opened,omitempty"`
	Failed  int     `json:"failed,omitempty"`
	OpenSec float64 `json:"open_seconds,omitempty"`
	// stats (every second) and report
	Stats *Stats `json:"stats,omitempty"`
	// waited
	Behind int `json:"behind,omitempty"`
	// report
	Streams []StreamReport `json:"streams,omitempty"`
	// error
	Error string `json:"error,omitempty"`
}

// Stats sums the streams of a client process (or of every one).
type Stats struct {
	Open          int   `json:"open"`
	Received      int64 `json:"received"`
	Connects      int   `json:"connects"`
	ConnectErrors int   `json:"connect_errors"`
	// ConnectFailures counts failed attempts by wire.FailureKind.
	ConnectFailures map[string]int `json:"connect_failures,omitempty"`
	Resumes         int            `json:"resumes"`
	Drops           int            `json:"drops"`
	ProtocolErrors  int            `json:"protocol_errors"`
	CloseReasons    map[string]int `json:"close_reasons,omitempty"`
	// Heartbeats since the last mark: the fewest any stream got, how many
	// streams got none, and the longest wait for one on any stream.
	BeatsMin      int   `json:"beats_min"`
	NoBeats       int   `json:"no_beats"`
	MaxBeatGapMs  int64 `json:"max_beat_gap_ms"`
	RSS           int64 `json:"rss"`
	GoroutinesApp int   `json:"goroutines"`
}

// add sums o into s: counts add up, BeatsMin is the fewest and
// MaxBeatGapMs the longest. first: s holds nothing yet.
func (s *Stats) add(o Stats, first bool) {
	if first {
		s.BeatsMin = o.BeatsMin
	}
	s.Open += o.Open
	s.Received += o.Received
	s.Connects += o.Connects
	s.ConnectErrors += o.ConnectErrors
	s.Resumes += o.Resumes
	s.Drops += o.Drops
	s.ProtocolErrors += o.ProtocolErrors
	s.CloseReasons = AddCounts(s.CloseReasons, o.CloseReasons)
	s.ConnectFailures = AddCounts(s.ConnectFailures, o.ConnectFailures)
	s.BeatsMin = min(s.BeatsMin, o.BeatsMin)
	s.NoBeats += o.NoBeats
	s.MaxBeatGapMs = max(s.MaxBeatGapMs, o.MaxBeatGapMs)
	s.RSS += o.RSS
	s.GoroutinesApp += o.GoroutinesApp
}

// StreamReport is one stream at the end of a run: its reader's stats, its
// pacer's with a Browser plan, and with deliveries the seqs it received
// and when (receipt times, unix microseconds). Over the pipe Seqs and
// AtMicros are delta-encoded; Report decodes them.
type StreamReport struct {
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

// AddCounts adds the counts of from (close reasons, failure kinds) into
// to, which it makes if needed, and returns to.
func AddCounts(to, from map[string]int) map[string]int {
	for k, v := range from {
		if to == nil {
			to = map[string]int{}
		}
		to[k] += v
	}
	return to
}
