package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
	"github.com/notifyd/notifyd/internal/wire"
)

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
	sem := make(chan struct{}, 64)
	streamCtx := ctx // runGroup's context ends with it; the streams must not
	err := runGroup(ctx, n, func(ctx context.Context, i int) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-sem }()
		s, err := sys.Open(streamCtx, i)
		if err != nil {
			return err
		}
		vs.streams[i] = s
		vs.wg.Add(1)
		go vs.read(i, s)
		return nil
	})
	if err != nil {
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
	var lat, fromReturn, call []time.Duration
	for _, rs := range vs.recv {
		for _, r := range rs {
			if int(r.k) >= warm {
				lat = append(lat, time.Duration(r.at-clock[r.k]))
				fromReturn = append(fromReturn, time.Duration(r.at-end[r.k]))
			}
		}
	}
	for k := warm; k < total; k++ {
		call = append(call, time.Duration(end[k]-start[k]))
	}
	cs := stats.Summarize(call)
	res.Messages, res.Achieved = int64(total-warm), float64(total)/elapsed.Seconds()
	res.Latency, res.FromReturn, res.PublishP50, res.PublishP99 = stats.Summarize(lat), stats.Summarize(fromReturn), cs.P50Ms, cs.P99Ms
	return res, nil
}

// versusMemory is a server's RSS before and after n streams connected, on
// a process that has served nothing else yet.
type versusMemory struct {
	System       string  `json:"system"`
	Streams      int     `json:"streams"`
	IdleMiB      float64 `json:"idle_mib"`
	PerStreamKiB float64 `json:"per_stream_kib"` // RSS after connect / streams
	MarginalKiB  float64 `json:"marginal_kib"`   // (after - idle) / streams
}

// measureVersusMemory opens n streams on sys, reads its RSS once they are
// all confirmed, and closes them.
func measureVersusMemory(ctx context.Context, sys versusSystem, n int) (*versusMemory, error) {
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
	if err != nil {
		return nil, err
	}
	return &versusMemory{System: sys.Name(), Streams: n, IdleMiB: mib(before), PerStreamKiB: float64(after) / 1024 / float64(n),
		MarginalKiB: float64(after-before) / 1024 / float64(n)}, nil
}
