package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// RunChild is a client process: it opens the streams of its plan,
// reports on them every second, and obeys commands until stdin closes.
func RunChild(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	dec := json.NewDecoder(stdin)
	var plan Plan
	if err := dec.Decode(&plan); err != nil {
		return fmt.Errorf("client: read plan: %w", err)
	}
	out := &msgWriter{enc: json.NewEncoder(stdout)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	nodes := cluster.NewNodes(plan.Nodes)
	if plan.LeastConnections {
		nodes.PickLeastConnections()
	}
	client, err := httpClient(plan.SourceIP)
	if err != nil {
		return err
	}
	readers := make([]*cluster.Reader, len(plan.Streams))
	var pacers []*pacer // by reader, with a Browser plan
	var running sync.WaitGroup
	defer running.Wait()
	defer cancel()

	for i, sp := range plan.Streams {
		tok, ok := plan.Tokens[sp.User]
		if !ok {
			return fmt.Errorf("client: no token for %s", sp.User)
		}
		c := client
		if plan.Browser != nil {
			p := newPacer(client.Transport, nodes, *plan.Browser)
			pacers = append(pacers, p)
			c = &http.Client{Transport: p}
		}
		readers[i] = cluster.NewReader(cluster.ReaderConfig{Client: c, Nodes: nodes, Token: tok, Node: sp.Node, Start: sp.Start})
	}
	var resumeRate atomic.Uint64 // math.Float64bits
	running.Add(2)
	go func() { defer running.Done(); reportStats(ctx, out, readers) }()
	go func() { defer running.Done(); resumeAtRandom(ctx, readers, &resumeRate) }()

	// Open the streams, OpenParallel at a time, so the node's accept queue
	// and the identity checks are not flooded.
	start := time.Now()
	sem := make(chan struct{}, max(1, plan.OpenParallel))
	var opening sync.WaitGroup
	var failed atomic.Int64
	for _, r := range readers {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		running.Add(1)
		go func() { defer running.Done(); r.Run(ctx) }()
		opening.Add(1)
		go func() {
			defer opening.Done()
			defer func() { <-sem }()
			select {
			case <-r.Connected():
			case <-time.After(60 * time.Second):
				failed.Add(1)
			case <-ctx.Done():
			}
		}()
	}
	opening.Wait()
	out.send(message{Type: "opened", Opened: len(readers) - int(failed.Load()), Failed: int(failed.Load()),
		OpenSec: time.Since(start).Seconds()})

	for {
		var cmd command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("client: read command: %w", err)
		}
		switch cmd.Op {
		case opResumeRate:
			resumeRate.Store(math.Float64bits(cmd.Rate))
		case opNodeDown, opNodeUp:
			if cmd.Node >= 0 && cmd.Node < nodes.Len() {
				nodes.SetDown(cmd.Node, cmd.Op == opNodeDown)
			}
		case opMark:
			for _, r := range readers {
				r.MarkHeartbeats()
			}
		case opWait:
			behind, _ := cluster.WaitFor(ctx, readers, cmd.Seq, time.Duration(cmd.TimeoutMs)*time.Millisecond)
			out.send(message{Type: "waited", Behind: behind})
		case opReport:
			out.send(report(readers, pacers, plan.Streams, cmd.Deliveries))
		default:
			out.send(message{Type: "error", Error: "unknown command " + cmd.Op})
		}
	}
}

// httpClient makes connections from sourceIP (a 127.0.0.x address of this
// process's own), so that the processes together are not limited by one
// address's ephemeral ports.
func httpClient(sourceIP string) (*http.Client, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if sourceIP != "" {
		ip := net.ParseIP(sourceIP)
		if ip == nil {
			return nil, fmt.Errorf("client: bad source address %q", sourceIP)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableCompression: true,
		MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 30 * time.Second}}, nil
}

// msgWriter writes one JSON line per message, from any goroutine.
type msgWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *msgWriter) send(m message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(m)
}

func reportStats(ctx context.Context, out *msgWriter, readers []*cluster.Reader) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := sumStats(readers)
			out.send(message{Type: "stats", Stats: &s})
		}
	}
}

// sumStats sums the readers' stats, with this process's memory and
// goroutines.
func sumStats(readers []*cluster.Reader) Stats {
	var s Stats
	for i, r := range readers {
		st := r.Stats()
		one := Stats{Received: int64(st.Received), Connects: st.Connects, ConnectErrors: st.ConnectErrors, ConnectFailures: st.ConnectFailures, Resumes: st.Resumes,
			Drops: st.Drops, ProtocolErrors: st.ProtocolErrors, CloseReasons: st.CloseReasons, BeatsMin: st.Heartbeats, MaxBeatGapMs: st.MaxBeatGapMs}
		if st.Open {
			one.Open = 1
		}
		if st.Heartbeats == 0 {
			one.NoBeats = 1
		}
		s.add(one, i == 0)
	}
	if s.CloseReasons == nil {
		s.CloseReasons = map[string]int{}
	}
	s.RSS, _ = cluster.RSS(os.Getpid())
	s.GoroutinesApp = runtime.NumGoroutine()
	return s
}

// resumeAtRandom makes a random stream resume on a random node, at the
// rate held in rate (a Poisson process; 0 pauses it).
func resumeAtRandom(ctx context.Context, readers []*cluster.Reader, rate *atomic.Uint64) {
	for ctx.Err() == nil {
		r := math.Float64frombits(rate.Load())
		wait := 100 * time.Millisecond
		if r > 0 {
			wait = time.Duration(rand.ExpFloat64() / r * float64(time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if r > 0 && len(readers) > 0 {
			readers[rand.IntN(len(readers))].Resume(-1)
		}
	}
}

func report(readers []*cluster.Reader, pacers []*pacer, specs []Stream, deliveries bool) message {
	m := message{Type: "report", Streams: make([]StreamReport, len(readers))}
	for i, r := range readers {
		sr := StreamReport{Key: specs[i].Key, Stats: r.Stats()}
		if i < len(pacers) {
			ps := pacers[i].Stats()
			sr.Pace = &ps
		}
		if deliveries {
			seqs, at := r.Received()
			for k := range at {
				at[k] /= 1000 // microseconds
			}
			sr.Seqs, sr.AtMicros = deltaEncode(seqs), deltaEncode(at)
		}
		m.Streams[i] = sr
	}
	s := sumStats(readers)
	m.Stats = &s
	return m
}
