package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
	"github.com/notifyd/notifyd/internal/wire"
	"golang.org/x/sync/errgroup"
)

// Issue 15's targets against Centrifugo, as ratios notifyd / Centrifugo.
const (
	targetVersusP50Ratio = 1.0 // at most: notifyd's p50 at 100 streams, 200/s
	targetVersusP99Ratio = 1.0 // at most: its p99
	targetVersusSatRatio = 1.5 // at least: deliveries/s at saturation, 1,000 streams
)

// VersusResult is notifyd beside Centrifugo on the same machine, with the
// same SSE reader, in interleaved runs.
type VersusResult struct {
	CentrifugoVersion string       `json:"centrifugo_version"`
	BuildSeconds      float64      `json:"centrifugo_build_seconds"`
	Memory            []NodeMemory `json:"memory"` // Node: the system
	Latency           []versusRun  `json:"latency"`
	Saturation        []versusRun  `json:"saturation"`

	// Medians over the rounds, per system ("notifyd", "centrifugo").
	P50Ms            map[string]float64 `json:"p50_ms"`
	P99Ms            map[string]float64 `json:"p99_ms"`
	DeliveriesPerS   map[string]float64 `json:"deliveries_per_s"`
	RSSPerStreamKiB  map[string]float64 `json:"rss_per_stream_kib"`
	P50Ratio         float64            `json:"p50_ratio"`
	P99Ratio         float64            `json:"p99_ratio"`
	SatRatio         float64            `json:"sat_ratio"`
	LatencyTargetMet bool               `json:"latency_target_met"`
	SatTargetMet     bool               `json:"sat_target_met"`
}

// runVersusPhase runs one notifyd node and one Centrifugo side by side
// (both idle while the other is measured) and alternates between them:
// cfg.VersusRounds paced runs on each, then as many saturation runs.
func (nr *nodeRun) runVersusPhase(ctx context.Context) (*VersusResult, error) {
	cfg, prog, stderr := nr.cfg, nr.prog, nr.stderr
	res := &VersusResult{CentrifugoVersion: centrifugoVersion}
	dir, err := os.MkdirTemp("", "notifyd-bench-versus-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := cfg.CentrifugoBin
	if bin == "" {
		start := time.Now()
		if bin, err = buildCentrifugo(ctx, dir, prog); err != nil {
			return nil, err
		}
		res.BuildSeconds = time.Since(start).Seconds()
	}

	most := max(cfg.VersusStreams, cfg.VersusSatStreams)
	// No publish rate: the saturation runs publish as fast as the node takes it.
	e, err := nr.startNodes(ctx, 1, map[string]string{"NOTIFY_MAX_STREAMS": strconv.Itoa(most + 1000), "NOTIFY_ADMIN_PUBLISH_RATE": "-1"})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	pool, err := newPool(ctx, e.db.URL, cfg.VersusSatPublishers+1, "notifyd-bench-versus")
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	admin, err := nr.token("vs-publisher", "ADMIN")
	if err != nil {
		return nil, err
	}
	nd := &notifydVersus{node: e.nodes[0], pool: pool, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		mode: cfg.VersusPublish, admin: admin}
	for i := range most {
		tok, err := nr.token("vs" + strconv.Itoa(i)) // one user per stream
		if err != nil {
			return nil, err
		}
		nd.tokens = append(nd.tokens, tok)
	}
	cf, err := startCentrifugo(ctx, bin, dir, prefixWriter(stderr, "centrifugo: "))
	if err != nil {
		return nil, err
	}
	defer cf.Stop(syscall.SIGTERM, 15*time.Second)
	ce := &centrifugoVersus{c: cf, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	systems := []versusSystem{nd, ce}
	prog.Printf("versus: notifyd %s (one node, publishing by %s), Centrifugo %s at %s (memory broker, uni_sse)", nd.node.URL(), nd.mode, centrifugoVersion, cf.URL)

	// Memory first, while neither process has served anything: RSS that a
	// run's garbage left behind would blur what the streams cost.
	for _, sys := range systems {
		m, err := measureVersusMemory(ctx, sys, cfg.VersusSatStreams)
		if err != nil {
			return res, fmt.Errorf("versus memory: %w", err)
		}
		res.Memory = append(res.Memory, *m)
		prog.Printf("versus: %-10s %d streams connected: RSS %.1f KiB a stream, %.1f KiB above its idle %.1f MiB",
			sys.Name(), m.Streams, m.PerStreamKiB, m.MarginalKiB, m.BaselineMiB)
	}

	for round := range cfg.VersusRounds {
		for _, sys := range systems {
			r, err := runVersus(ctx, sys, cfg.VersusStreams, 1, math.MaxInt, cfg.VersusRate, cfg.VersusDuration, cfg.Timeout)
			if err != nil {
				return res, fmt.Errorf("versus latency round %d: %w", round+1, err)
			}
			r.Round = round + 1
			res.Latency = append(res.Latency, *r)
			prog.Printf("versus: round %d, %-10s %d streams at %d/s: p50 %.2f ms, p99 %.2f ms (publish call p50 %.2f ms; from its return p50 %.2f ms, p99 %.2f ms; %d deliveries)",
				round+1, sys.Name(), cfg.VersusStreams, cfg.VersusRate, r.Latency.P50Ms, r.Latency.P99Ms, r.PublishP50, r.FromReturn.P50Ms, r.FromReturn.P99Ms, r.Latency.Count)
		}
	}
	for round := range cfg.VersusRounds {
		for _, sys := range systems {
			r, err := runVersus(ctx, sys, cfg.VersusSatStreams, cfg.VersusSatPublishers, cfg.VersusWindow, 0, cfg.VersusSatDuration, cfg.Timeout)
			if err != nil {
				return res, fmt.Errorf("versus saturation round %d: %w", round+1, err)
			}
			r.Round = round + 1
			res.Saturation = append(res.Saturation, *r)
			prog.Printf("versus: round %d, %-10s %d streams at saturation: %s deliveries/s (%s messages in %.2f s; %.0f%% of publishes waited for the window); CPU-s server %.1f, bench %.1f",
				round+1, sys.Name(), cfg.VersusSatStreams, num(r.DeliveriesPerS), num(float64(r.Messages)), r.Seconds, 100*r.WindowWaits, r.ServerCPU, r.BenchCPU)
		}
	}
	res.summarize()
	prog.Printf("versus: notifyd/centrifugo p50 %.2f× (target <= %.1f×), p99 %.2f× (target <= %.1f×), saturation %.2f× (target >= %.1f×)",
		res.P50Ratio, targetVersusP50Ratio, res.P99Ratio, targetVersusP99Ratio, res.SatRatio, targetVersusSatRatio)
	return res, nil
}

// summarize takes the medians over the rounds and the ratios.
func (r *VersusResult) summarize() {
	sys := func(x versusRun) string { return x.System }
	r.P50Ms = medianBy(r.Latency, sys, func(x versusRun) float64 { return x.Latency.P50Ms })
	r.P99Ms = medianBy(r.Latency, sys, func(x versusRun) float64 { return x.Latency.P99Ms })
	r.DeliveriesPerS = medianBy(r.Saturation, sys, func(x versusRun) float64 { return x.DeliveriesPerS })
	r.RSSPerStreamKiB = medianBy(r.Memory, func(m NodeMemory) string { return m.Node }, func(m NodeMemory) float64 { return m.PerStreamKiB })
	of := func(m map[string]float64) float64 { return ratio(m["notifyd"], m["centrifugo"]) }
	r.P50Ratio, r.P99Ratio, r.SatRatio = of(r.P50Ms), of(r.P99Ms), of(r.DeliveriesPerS)
	r.LatencyTargetMet = len(r.Latency) > 0 && r.P50Ratio <= targetVersusP50Ratio && r.P99Ratio <= targetVersusP99Ratio
	r.SatTargetMet = len(r.Saturation) > 0 && r.SatRatio >= targetVersusSatRatio
}

// medianBy is the median of value over xs, per system.
func medianBy[T any](xs []T, system func(T) string, value func(T) float64) map[string]float64 {
	by, out := map[string][]float64{}, map[string]float64{}
	for _, x := range xs {
		by[system(x)] = append(by[system(x)], value(x))
	}
	for s, vs := range by {
		out[s] = stats.Median(vs)
	}
	return out
}

// write prints notifyd beside Centrifugo (the versus phase).
func (v *VersusResult) write(w io.Writer, r *Report) {
	c := r.cfg
	built := "given with -centrifugo-bin"
	if v.BuildSeconds > 0 {
		built = fmt.Sprintf("built from the module proxy in %.0f s", v.BuildSeconds)
	}
	fmt.Fprintf(w, "\nVersus Centrifugo %s (%s; memory broker, uni_sse): the same SSE reader in the bench, runs interleaved, medians of %d\n",
		v.CentrifugoVersion, built, c.VersusRounds)
	fmt.Fprintf(w, "   latency: %d streams, one publisher at %d/s for %.0f s (notifyd: %s;\n"+
		"   Centrifugo: HTTP API publish to the channel every stream subscribed to, clock at the request's start)\n", c.VersusStreams, c.VersusRate, c.VersusDuration.Seconds(), versusPublishDoc[c.VersusPublish])
	writeTable(w, "round\tsystem\tachieved\tp50\tp90\tp99\tmax\tdeliveries\tpublish call p50/p99\tfirst receipt p50/p99\tspread p50/p99\tCPU-s server/bench",
		rowsOf(v.Latency, func(_ int, l versusRun) string {
			return fmt.Sprintf("%d\t%s\t%.0f/s\t%.2f ms\t%.2f ms\t%.2f ms\t%.1f ms\t%s\t%.2f/%.2f ms\t%.2f/%.2f ms\t%.2f/%.2f ms\t%.1f/%.1f", l.Round, l.System, l.Achieved,
				l.Latency.P50Ms, l.Latency.P90Ms, l.Latency.P99Ms, l.Latency.MaxMs, num(float64(l.Latency.Count)), l.PublishP50, l.PublishP99,
				l.First.P50Ms, l.First.P99Ms, l.Spread.P50Ms, l.Spread.P99Ms, l.ServerCPU, l.BenchCPU)
		})...)
	fmt.Fprintf(w, "   (first receipt: per message, the clock to its first receipt on any stream; spread: its first receipt to its last)\n")
	fmt.Fprintf(w, "   saturation: %d streams, %d publishers as fast as they can for %.0f s, at most %d messages not yet on every stream\n",
		c.VersusSatStreams, c.VersusSatPublishers, c.VersusSatDuration.Seconds(), c.VersusWindow)
	writeTable(w, "round\tsystem\tmessages\tdeliveries/s\tpublishes that waited for the window\tCPU-s server/bench",
		rowsOf(v.Saturation, func(_ int, s versusRun) string {
			return fmt.Sprintf("%d\t%s\t%s\t%s\t%.0f%%\t%.1f/%.1f", s.Round, s.System, num(float64(s.Messages)), num(s.DeliveriesPerS),
				100*s.WindowWaits, s.ServerCPU, s.BenchCPU)
		})...)
	writeTable(w, "median\tnotifyd\tcentrifugo\tnotifyd/centrifugo\ttarget",
		fmt.Sprintf("p50\t%.2f ms\t%.2f ms\t%.2f×\t<= %.1f×: %s", v.P50Ms["notifyd"], v.P50Ms["centrifugo"], v.P50Ratio,
			targetVersusP50Ratio, verdict(len(v.Latency) > 0 && v.P50Ratio <= targetVersusP50Ratio)),
		fmt.Sprintf("p99\t%.2f ms\t%.2f ms\t%.2f×\t<= %.1f×: %s", v.P99Ms["notifyd"], v.P99Ms["centrifugo"], v.P99Ratio,
			targetVersusP99Ratio, verdict(len(v.Latency) > 0 && v.P99Ratio <= targetVersusP99Ratio)),
		fmt.Sprintf("deliveries/s at saturation\t%s\t%s\t%.2f×\t>= %.1f×: %s", num(v.DeliveriesPerS["notifyd"]), num(v.DeliveriesPerS["centrifugo"]),
			v.SatRatio, targetVersusSatRatio, verdict(v.SatTargetMet)))
	for _, m := range v.Memory {
		fmt.Fprintf(w, "   memory, %s: %d streams connected to the fresh process: RSS %.1f KiB a stream, %.1f KiB above its idle %.1f MiB\n",
			m.Node, m.Streams, m.PerStreamKiB, m.MarginalKiB, m.BaselineMiB)
	}
}

// versusPublishDoc says how notifyd's messages were published and where
// their clock starts, per -versus-publish.
var versusPublishDoc = map[string]string{
	versusInsert: "single-row INSERT to everyone, clock at commit",
	versusSend:   "SELECT notify.send(...) to everyone, born published, clock at the call's start",
	versusHTTP:   "POST /api/notifications to everyone, born published, clock at the request's start",
}

// versusStreams is one run's streams on one system, read by the same
// reader whatever the system: every event carrying a message number is
// counted, and its arrival time kept when the run measures latency.
type versusStreams struct {
	n       int
	streams []*wire.Stream
	record  bool
	// remaining counts, per message number, the streams that have not
	// received it yet; completed counts messages every stream received.
	remaining []atomic.Int32
	completed atomic.Int64
	wake      chan struct{} // a message completed (capacity 1)
	received  atomic.Int64
	lost      atomic.Int64 // streams that ended before the run closed them
	closing   atomic.Bool
	recv      [][]versusReceipt // per stream, written only by its reader until wg is done
	last      []int64           // per stream: the last receipt, unix ns
	wg        sync.WaitGroup
	errMu     sync.Mutex
	firstErr  error
}

type versusReceipt struct {
	k  int32
	at int64 // unix ns
}

// openVersusStreams opens n streams on sys, at most 64 at a time, and
// starts reading them. maxMessages bounds the message numbers the run
// publishes.
func openVersusStreams(ctx context.Context, sys versusSystem, n, maxMessages int, record bool) (*versusStreams, error) {
	vs := &versusStreams{n: n, streams: make([]*wire.Stream, n), record: record,
		remaining: make([]atomic.Int32, maxMessages), wake: make(chan struct{}, 1),
		recv: make([][]versusReceipt, n), last: make([]int64, n)}
	for k := range vs.remaining {
		vs.remaining[k].Store(int32(n))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error {
			if err := gctx.Err(); err != nil { // another failed
				return err
			}
			s, err := sys.Open(ctx, i) // not gctx: it ends with the group, the streams must not
			if err != nil {
				return err
			}
			vs.streams[i] = s
			vs.wg.Add(1)
			go vs.read(i, s)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		vs.Close()
		return nil, fmt.Errorf("%s: open %d streams: %w", sys.Name(), n, err)
	}
	return vs, nil
}

// read consumes stream i until it ends.
func (vs *versusStreams) read(i int, s *wire.Stream) {
	defer vs.wg.Done()
	for {
		ev, err := s.Next()
		if err != nil {
			if !vs.closing.Load() {
				vs.lost.Add(1)
				vs.errMu.Lock()
				if vs.firstErr == nil {
					vs.firstErr = fmt.Errorf("stream %d ended: %w", i, err)
				}
				vs.errMu.Unlock()
			}
			return
		}
		k, ok := versusMessage(ev.Data)
		if !ok || k < 0 || k >= len(vs.remaining) {
			continue
		}
		now := time.Now().UnixNano()
		vs.last[i] = now
		if vs.record {
			vs.recv[i] = append(vs.recv[i], versusReceipt{k: int32(k), at: now})
		}
		vs.received.Add(1)
		if vs.remaining[k].Add(-1) == 0 {
			vs.completed.Add(1)
			select {
			case vs.wake <- struct{}{}:
			default:
			}
		}
	}
}

// waitCompleted waits until n messages have reached every stream, a stream
// is lost, or timeout passes.
func (vs *versusStreams) waitCompleted(ctx context.Context, n int64, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond) // a lost stream wakes nobody
	defer tick.Stop()
	for vs.completed.Load() < n {
		if vs.lost.Load() > 0 {
			return vs.err()
		}
		select {
		case <-vs.wake:
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("%d of %d messages reached every stream within %s (%d deliveries)", vs.completed.Load(), n, timeout, vs.received.Load())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (vs *versusStreams) err() error {
	vs.errMu.Lock()
	defer vs.errMu.Unlock()
	return vs.firstErr
}

// Close ends every stream and waits for the readers.
func (vs *versusStreams) Close() {
	vs.closing.Store(true)
	for _, s := range vs.streams {
		if s != nil {
			s.Close()
		}
	}
	vs.wg.Wait()
}

// lastReceipt is the latest receipt on any stream (after Close).
func (vs *versusStreams) lastReceipt() time.Time {
	return time.Unix(0, slices.Max(vs.last))
}

// cpuSince returns the CPU seconds the server (pid) and the bench (the
// SSE reader and the publishers) have used since the call; PostgreSQL's
// is in neither.
func cpuSince(pid int) func() (server, bench float64) {
	s0, _ := cluster.CPUTime(pid)
	b0 := processCPU()
	return func() (float64, float64) {
		s, _ := cluster.CPUTime(pid)
		b := processCPU()
		return (s - s0).Seconds(), (b - b0).Seconds()
	}
}

// versusRun is one run on one system: paced (latency) or at saturation.
type versusRun struct {
	System   string `json:"system"`
	Round    int    `json:"round"`
	Messages int64  `json:"messages"`
	// Paced runs: the rate achieved, the latency from the system's clock
	// (ClockAtReturn) to receipt, from the publish call's return whatever
	// the clock, and the publish call itself.
	Achieved   float64       `json:"achieved_per_s,omitempty"`
	Latency    stats.Summary `json:"latency"`
	FromReturn stats.Summary `json:"from_return"`
	// First is, per message, the clock to its first receipt on any stream,
	// and Spread its first receipt to its last: what the path to the
	// server's first write costs, and what the fan-out adds after it.
	First      stats.Summary `json:"first"`
	Spread     stats.Summary `json:"spread"`
	PublishP50 float64       `json:"publish_p50_ms,omitempty"`
	PublishP99 float64       `json:"publish_p99_ms,omitempty"`
	// Saturation runs: deliveries from the first publish to the last
	// receipt, and the share of publishes that first waited for the
	// window (near 1, delivery is the limit; near 0, the publishers are).
	Deliveries     int64   `json:"deliveries,omitempty"`
	Seconds        float64 `json:"seconds,omitempty"`
	DeliveriesPerS float64 `json:"deliveries_per_s,omitempty"`
	WindowWaits    float64 `json:"window_waits,omitempty"`
	// ServerCPU and BenchCPU are CPU seconds over the publishing.
	ServerCPU float64 `json:"server_cpu_s"`
	BenchCPU  float64 `json:"bench_cpu_s"`
}

// runVersus holds streams on sys and publishes for d, then waits until
// every stream has everything. With rate > 0 one publisher publishes rate
// messages a second, the first half second a warm-up left out of the
// figures; otherwise publishers publish as fast as they can with at most
// window messages published but not yet on every stream (so no stream
// falls far enough behind to be dropped as slow by either server).
func runVersus(ctx context.Context, sys versusSystem, streams, publishers, window, rate int, d, timeout time.Duration) (*versusRun, error) {
	total, warm := 1<<21, 0 // saturation: more than a run publishes
	if rate > 0 {
		warm = max(rate/2, 1)
		total = warm + int(float64(rate)*d.Seconds())
	}
	vs, err := openVersusStreams(ctx, sys, streams, total, rate > 0)
	if err != nil {
		return nil, err
	}
	defer vs.Close()
	var start, end []int64 // per message, unix ns: the publish call's start and return
	if rate > 0 {
		start, end = make([]int64, total), make([]int64, total)
	}
	var every time.Duration // saturation: at once
	if rate > 0 {
		every = time.Second / time.Duration(rate)
	}
	var published, waited atomic.Int64
	cpu := cpuSince(sys.PID())
	begin := time.Now()
	more := func(k int64, _ time.Time) bool { return k < int64(total) && (rate > 0 || time.Since(begin) < d) }
	err = slots(ctx, publishers, begin, every, more, func(ctx context.Context, _ int, k int64) error {
		if k-vs.completed.Load() >= int64(window) {
			waited.Add(1)
		}
		for k-vs.completed.Load() >= int64(window) {
			select {
			case <-vs.wake:
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if rate > 0 {
			start[k] = time.Now().UnixNano()
		}
		if err := sys.Publish(ctx, int(k)); err != nil {
			return err
		}
		if rate > 0 {
			end[k] = time.Now().UnixNano()
		}
		published.Add(1)
		if vs.lost.Load() > 0 {
			return vs.err()
		}
		return nil
	})
	elapsed := time.Since(begin)
	res := &versusRun{System: sys.Name(), Messages: published.Load()}
	if err == nil {
		err = vs.waitCompleted(ctx, res.Messages, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sys.Name(), err)
	}
	res.ServerCPU, res.BenchCPU = cpu()
	vs.Close()
	if rate == 0 {
		res.WindowWaits = float64(waited.Load()) / float64(max(res.Messages, 1))
		res.Deliveries = vs.received.Load()
		res.Seconds = vs.lastReceipt().Sub(begin).Seconds()
		res.DeliveriesPerS = float64(res.Deliveries) / res.Seconds
		return res, nil
	}
	clock := start
	if sys.ClockAtReturn() {
		clock = end
	}
	var lat, fromReturn, call, first, spread []time.Duration
	earliest, latest := make([]int64, total), make([]int64, total)
	for _, rs := range vs.recv {
		for _, r := range rs {
			if int(r.k) >= warm {
				lat = append(lat, time.Duration(r.at-clock[r.k]))
				fromReturn = append(fromReturn, time.Duration(r.at-end[r.k]))
				if earliest[r.k] == 0 || r.at < earliest[r.k] {
					earliest[r.k] = r.at
				}
				latest[r.k] = max(latest[r.k], r.at)
			}
		}
	}
	for k := warm; k < total; k++ {
		call = append(call, time.Duration(end[k]-start[k]))
		first = append(first, time.Duration(earliest[k]-clock[k]))
		spread = append(spread, time.Duration(latest[k]-earliest[k]))
	}
	cs := stats.Summarize(call)
	res.Messages, res.Achieved = int64(total-warm), float64(total)/elapsed.Seconds()
	res.Latency, res.FromReturn, res.PublishP50, res.PublishP99 = stats.Summarize(lat), stats.Summarize(fromReturn), cs.P50Ms, cs.P99Ms
	res.First, res.Spread = stats.Summarize(first), stats.Summarize(spread)
	return res, nil
}

// measureVersusMemory opens n streams on sys, reads its RSS once they are
// all confirmed, and closes them.
func measureVersusMemory(ctx context.Context, sys versusSystem, n int) (*NodeMemory, error) {
	before, err := cluster.RSS(sys.PID())
	if err != nil {
		return nil, err
	}
	vs, err := openVersusStreams(ctx, sys, n, 1, false)
	if err != nil {
		return nil, err
	}
	defer vs.Close()
	after, err := cluster.RSS(sys.PID())
	m := newNodeMemory(sys.Name(), n, after, before)
	return &m, err
}
