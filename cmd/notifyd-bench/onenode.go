package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// Targets of the one-node phases (issue 6).
const (
	targetRSSMiB          = 600
	targetPerStreamKiB    = 40
	targetBroadcastP99Ms  = 500
	targetResumeMs        = 500
	streamsPerUserOneNode = 10 // below NOTIFY_MAX_STREAMS_PER_USER's default of 20
)

// oneNode starts one node with env (and room for streams) and lays out
// streams live on it for users users of a population drawn with seed,
// named prefix0, prefix1, …; the caller opens them and closes e.
func (nr *nodeRun) oneNode(ctx context.Context, streams, users int, seed uint64, prefix string, env map[string]string) (*nodeEnv, *layout, error) {
	settings := map[string]string{"NOTIFY_MAX_STREAMS": strconv.Itoa(streams + 1000)}
	maps.Copy(settings, env)
	e, err := nr.startNodes(ctx, 1, settings)
	if err != nil {
		return nil, nil, err
	}
	l, err := e.newLayout(cluster.NewPopulation(rand.New(rand.NewPCG(seed, seed)), prefix, users, 10, 2), streams, -1, nil)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return e, l, nil
}

// heartbeatEnv makes a node send heartbeats every d, and keeps idle
// connections open long enough for them.
func heartbeatEnv(d time.Duration) map[string]string {
	return map[string]string{"NOTIFY_HEARTBEAT_INTERVAL": d.String(), "NOTIFY_CONN_TIMEOUT": max(60*time.Second, 4*d).String()}
}

// Heartbeats is what the streams got over a stretch of heartbeats only:
// the fewest any stream got, how many got none, and the longest any
// stream waited for one.
type Heartbeats struct {
	BeatsMin     int   `json:"heartbeats_min"`
	BeatsWanted  int   `json:"heartbeats_wanted"`
	NoBeats      int   `json:"streams_without_heartbeat"`
	MaxBeatGapMs int64 `json:"max_heartbeat_gap_ms"`
	BeatsOK      bool  `json:"heartbeats_ok"`
}

// heartbeats judges st over hold with a heartbeat every interval: a stream
// sees at least hold/interval - 1 (the first may fall just before the
// mark) and never waits much more than an interval for one.
func heartbeats(st fleet.Stats, hold, interval time.Duration) Heartbeats {
	h := Heartbeats{BeatsMin: st.BeatsMin, NoBeats: st.NoBeats, MaxBeatGapMs: st.MaxBeatGapMs, BeatsWanted: max(1, int(hold/interval)-1)}
	h.BeatsOK = h.NoBeats == 0 && h.BeatsMin >= h.BeatsWanted && st.Drops == 0 && h.MaxBeatGapMs <= 2*interval.Milliseconds()
	return h
}

func (h Heartbeats) String() string {
	return fmt.Sprintf("fewest %d (want >= %d), %d streams without, longest wait %d ms: %s", h.BeatsMin, h.BeatsWanted, h.NoBeats, h.MaxBeatGapMs, verdict(h.BeatsOK))
}

// watchPeakRSS samples node's RSS every `every` until the returned
// function is called, which returns the highest seen, in MiB.
func watchPeakRSS(node *cluster.Node, every time.Duration) func() float64 {
	var peak int64
	sample := func() {
		if rss, err := node.RSS(); err == nil {
			peak = max(peak, rss)
		}
	}
	sample()
	stop := repeat(every, sample)
	return func() float64 { stop(); return mib(peak) }
}

// StreamsResult is the streams phase: many idle streams on one node.
type StreamsResult struct {
	Streams     int     `json:"streams"`
	Opened      int     `json:"opened"`
	Clients     int     `json:"client_processes"`
	OpenSeconds float64 `json:"open_seconds"`
	// Memory is at the end of the hold; PeakRSSMiB the most seen during it.
	Memory     NodeMemory `json:"memory"`
	PeakRSSMiB float64    `json:"peak_rss_mib"`
	Heartbeats
	Drops        int       `json:"drops"`
	ClientRSSMiB float64   `json:"client_rss_mib"`
	CPU          []ProcCPU `json:"cpu"`
	TargetMet    bool      `json:"target_met"`
}

// runStreamsPhase holds cfg.HoldStreams idle streams on one node for
// cfg.Hold with heartbeats every cfg.Heartbeat, and measures the node's
// resident memory and that every stream's heartbeats keep arriving.
func (nr *nodeRun) runStreamsPhase(ctx context.Context) (*StreamsResult, error) {
	cfg, prog, rep := nr.cfg, nr.prog, nr.rep
	s := cfg.HoldStreams
	prog.Printf("streams: %d streams on one node for %s, heartbeat every %s", s, cfg.Hold, cfg.Heartbeat)
	e, l, err := nr.oneNode(ctx, s, (s+streamsPerUserOneNode-1)/streamsPerUserOneNode, 1, "hold", heartbeatEnv(cfg.Heartbeat))
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res := &StreamsResult{Streams: s, Clients: len(l.plans)}
	cs, err := l.open(ctx, phaseStreams, nil, &res.Opened, &res.OpenSeconds)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	if err := cs.MarkHeartbeats(); err != nil {
		return nil, err
	}
	samp := startSampler(ctx, e.admin, 500*time.Millisecond)
	win := startCPU(e, cs)
	peak := watchPeakRSS(e.nodes[0], time.Second)
	stop := prog.Every(5*time.Second, func() string {
		st := cs.Stats()
		rss, _ := e.nodes[0].RSS()
		return fmt.Sprintf("streams: holding %d, node RSS %.0f MiB (%.1f KiB a stream), heartbeats: fewest %d, longest gap %d ms, %d drops",
			st.Open, mib(rss), float64(rss)/1024/float64(max(1, st.Open)), st.BeatsMin, st.MaxBeatGapMs, st.Drops)
	})
	err = sleepCtx(ctx, cfg.Hold)
	stop()
	res.PeakRSSMiB = peak()
	if err != nil {
		return nil, err
	}
	res.CPU = win()
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseStreams))
	if mem := e.memory(ctx); len(mem) == 1 {
		res.Memory = mem[0]
	}
	res.PeakRSSMiB = max(res.PeakRSSMiB, res.Memory.RSSMiB)
	if _, err := cs.Report(ctx, false); err != nil { // refreshes cs.Stats
		return nil, err
	}
	st := cs.Stats()
	res.Heartbeats, res.Drops, res.ClientRSSMiB = heartbeats(st, cfg.Hold, cfg.Heartbeat), st.Drops, mib(st.RSS)
	res.TargetMet = res.Opened == s && res.PeakRSSMiB <= targetRSSMiB && res.Memory.PerStreamKiB <= targetPerStreamKiB && res.BeatsOK
	if !res.BeatsOK {
		return res, fmt.Errorf("streams: heartbeats did not reach every stream (%s, %d drops)", res.Heartbeats, res.Drops)
	}
	return res, nil
}

func (s *StreamsResult) write(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n4. Concurrent streams on one node: %s streams (%d client processes), held %.0f s with a heartbeat every %.0f s\n",
		num(float64(s.Streams)), s.Clients, r.cfg.Hold.Seconds(), r.cfg.Heartbeat.Seconds())
	writeTable(w, "",
		fmt.Sprintf("streams open (node's notifyd_streams_open)\t%s of %s\topened in %.1f s", num(float64(s.Memory.Streams)), num(float64(s.Streams)), s.OpenSeconds),
		fmt.Sprintf("node RSS\t%.0f MiB (peak %.0f)\ttarget <= %d MiB: %s", s.Memory.RSSMiB, s.PeakRSSMiB, targetRSSMiB, verdict(s.PeakRSSMiB <= targetRSSMiB)),
		fmt.Sprintf("RSS per stream\t%.1f KiB (%.1f KiB above the empty node's %.0f MiB)\ttarget <= %d KiB: %s",
			s.Memory.PerStreamKiB, s.Memory.MarginalKiB, s.Memory.BaselineMiB, targetPerStreamKiB, verdict(s.Memory.PerStreamKiB <= targetPerStreamKiB)),
		"heartbeats per stream during the hold\t"+s.Heartbeats.String(),
		fmt.Sprintf("client processes' RSS\t%.0f MiB\t", s.ClientRSSMiB))
	writeCPU(w, s.CPU)
}

// Broadcasts is notifications to every stream of a node, one at a time:
// per broadcast, its commit to its receipt on the last stream
// (LastReceipt), and its commit to its receipt on each stream.
type Broadcasts struct {
	Broadcasts  int           `json:"broadcasts"`
	LastReceipt stats.Summary `json:"last_receipt"`
	AllReceipts stats.Summary `json:"all_receipts"`
	Check       cluster.Check `json:"check"`
}

// broadcast inserts n notifications to everyone, interval before each,
// then waits until every stream of l has them (and waited runs), and
// checks every stream from start: exactly once, in order.
func (e *nodeEnv) broadcast(ctx context.Context, cs *fleet.Fleet, l *layout, start int64, n int, interval time.Duration,
	phase string, waited func()) (Broadcasts, error) {
	prog := e.run.prog
	b := Broadcasts{Broadcasts: n}
	commits := map[string]int64{} // unix nanoseconds
	for i := range n {
		if err := sleepCtx(ctx, interval); err != nil {
			return b, err
		}
		ids, err := cluster.Insert(ctx, e.admin, []notify.Target{{}}, "bench", "")
		if err != nil {
			return b, fmt.Errorf("%s: broadcast: %w", phase, err)
		}
		commits[ids[0]] = time.Now().UnixNano()
		if (i+1)%5 == 0 {
			prog.Printf("%s: %d of %d broadcasts sent, %d deliveries so far", phase, i+1, n, cs.Stats().Received)
		}
	}
	sentinel, err := cluster.PublishSentinel(ctx, e.admin, e.run.cfg.Timeout)
	if err != nil {
		return b, err
	}
	if behind, err := cs.WaitSeq(ctx, sentinel, e.run.cfg.Timeout); err != nil {
		return b, fmt.Errorf("%s: %d streams did not receive every broadcast: %w", phase, behind, err)
	}
	waited()
	var tally StreamTally
	cd, err := checkStreams(ctx, e, cs, l, start, &tally)
	if err != nil {
		return b, err
	}
	b.Check = tally.Check
	last := map[int64]time.Duration{} // per broadcast seq: its latest receipt
	var all []time.Duration
	cd.each(commits, func(_ int, seq, at, c int64) { // the sentinel has no commit time
		all = append(all, time.Duration(at-c))
		last[seq] = max(last[seq], time.Duration(at-c))
	})
	b.LastReceipt, b.AllReceipts = stats.Summarize(slices.Collect(maps.Values(last))), stats.Summarize(all)
	prog.Printf("%s: commit to last stream p50 %.0f ms, p99 %.0f ms, max %.0f ms; to each stream p50 %.0f ms, p99 %.0f ms",
		phase, b.LastReceipt.P50Ms, b.LastReceipt.P99Ms, b.LastReceipt.MaxMs, b.AllReceipts.P50Ms, b.AllReceipts.P99Ms)
	return b, exactlyOnce(prog, phase, b.Check)
}

// write prints the broadcasts' table, target a note on the each-stream
// row (burst) or lastTarget on the last-stream row (broadcast).
func (b Broadcasts) write(w io.Writer, title, eachTarget, lastTarget string) {
	writeTable(w, title+summaryHeader+"\ttarget", summaryRow("on the last stream, per broadcast", b.LastReceipt, lastTarget),
		summaryRow("on each stream", b.AllReceipts, eachTarget))
	fmt.Fprintf(w, "   exactly-once: %s\n", checkLine(b.Check))
}

// BroadcastResult is the broadcast phase.
type BroadcastResult struct {
	Streams int `json:"streams"`
	Opened  int `json:"opened"`
	Broadcasts
	Memory                NodeMemory `json:"memory"`
	CPU                   []ProcCPU  `json:"cpu"`
	NodeCPUPerBroadcastMs float64    `json:"node_cpu_per_broadcast_ms"`
	TargetMet             bool       `json:"target_met"`
}

// runBroadcastPhase opens cfg.BroadcastStreams streams on one node, then
// sends cfg.Broadcasts notifications to everyone, cfg.BroadcastInterval
// apart (Broadcasts).
func (nr *nodeRun) runBroadcastPhase(ctx context.Context) (*BroadcastResult, error) {
	cfg, prog, rep := nr.cfg, nr.prog, nr.rep
	s := cfg.BroadcastStreams
	prog.Printf("broadcast: %d streams on one node, %d broadcasts %s apart", s, cfg.Broadcasts, cfg.BroadcastInterval)
	e, l, err := nr.oneNode(ctx, s, (s+streamsPerUserOneNode-1)/streamsPerUserOneNode, 2, "bc", nil)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res := &BroadcastResult{Streams: s}
	cs, err := l.open(ctx, phaseBroadcast, nil, &res.Opened, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	// The streams opened live (no Last-Event-ID) before anything was
	// published: each must receive everything after this head.
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return nil, err
	}
	samp := startSampler(ctx, e.admin, 100*time.Millisecond)
	win := startCPU(e, cs)
	res.Broadcasts, err = e.broadcast(ctx, cs, l, start, cfg.Broadcasts, cfg.BroadcastInterval, phaseBroadcast, func() {
		res.CPU = win()
		rep.Profiles = append(rep.Profiles, samp.Stop(phaseBroadcast))
		if mem := e.memory(ctx); len(mem) == 1 {
			res.Memory = mem[0]
		}
		res.NodeCPUPerBroadcastMs = res.CPU[0].CPUSeconds * 1000 / float64(cfg.Broadcasts+1)
	})
	res.TargetMet = res.Check.OK() && res.LastReceipt.Count == cfg.Broadcasts && res.LastReceipt.P99Ms <= targetBroadcastP99Ms
	return res, err
}

func (b *BroadcastResult) write(w io.Writer, _ *Report) {
	fmt.Fprintf(w, "\n5. Broadcast to every stream of one node: %s streams, %d notifications to everyone, one at a time\n",
		num(float64(b.Streams)), b.Broadcasts.Broadcasts)
	b.Broadcasts.write(w, "commit to receipt", "", fmt.Sprintf("p99 <= %d ms: %s", targetBroadcastP99Ms, verdict(b.TargetMet)))
	fmt.Fprintf(w, "   node CPU per broadcast: %.0f ms (fan-out to %s streams); node RSS %.0f MiB\n",
		b.NodeCPUPerBroadcastMs, num(float64(b.Streams)), b.Memory.RSSMiB)
	writeCPU(w, b.CPU)
}

// ResumeRound is one resume of a stream far behind: request to its first
// notification and to the last one.
type ResumeRound struct {
	Received int     `json:"received"`
	FirstMs  float64 `json:"first_ms"`
	TotalMs  float64 `json:"total_ms"`
	Check    cluster.Check
}

// ResumeResult is the resume phase.
type ResumeResult struct {
	TableRows int64         `json:"table_rows"`
	Rounds    []ResumeRound `json:"rounds"`
	MedianMs  float64       `json:"median_ms"`
	MaxMs     float64       `json:"max_ms"`
	RatePerS  float64       `json:"rate"` // notifications replayed per second, median round
	OK        bool          `json:"exactly_once"`
	TargetMet bool          `json:"target_met"`
}

// runResumePhase: a stream is cfg.ResumeBehind notifications behind (with
// cfg.ResumeNoise notifications to other users interleaved per one of its
// own, so the replay reads past others' rows as it would in a shared
// table); it reconnects with Last-Event-ID and the phase measures from the
// request to the last replayed notification. Repeated cfg.ResumeRounds
// times; the median is the figure.
func (nr *nodeRun) runResumePhase(ctx context.Context) (*ResumeResult, error) {
	cfg, prog, rep := nr.cfg, nr.prog, nr.rep
	prog.Printf("resume: a stream %d notifications behind (noise %.1f), %d rounds", cfg.ResumeBehind, cfg.ResumeNoise, cfg.ResumeRounds)
	e, err := nr.startNodes(ctx, 1, nil)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	id := notify.Identity{UserID: "resumer", Roles: []string{"R1"}}
	tok, err := nr.token(id.UserID, id.Roles...)
	if err != nil {
		return nil, err
	}
	var targets []notify.Target
	acc := 0.0
	for i := range cfg.ResumeBehind {
		targets = append(targets, notify.Target{UserID: id.UserID})
		for acc += cfg.ResumeNoise; acc >= 1; acc-- {
			targets = append(targets, notify.Target{UserID: "other" + strconv.Itoa(i%500)})
		}
	}
	res := &ResumeResult{OK: true}
	samp := startSampler(ctx, e.admin, 50*time.Millisecond)
	defer func() { rep.Profiles = append(rep.Profiles, samp.Stop(phaseResume)) }()
	var totals []float64
	for round := range cfg.ResumeRounds {
		from, err := cluster.Head(ctx, e.admin)
		for i := 0; i < len(targets) && err == nil; i += 1000 {
			_, err = cluster.Insert(ctx, e.admin, targets[i:min(i+1000, len(targets))], "resume", "")
		}
		if err == nil {
			err = cluster.WaitDrained(ctx, e.admin, cfg.Timeout)
		}
		if err != nil {
			return nil, err
		}
		var r ResumeRound
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		begin := time.Now()
		seqs, err := replay(rctx, e.http, e.nodes[0].URL(), http.Header{"Authorization": {"Bearer " + tok}}, from, cfg.ResumeBehind, func(count int) {
			if count == 1 {
				r.FirstMs = stats.Ms(time.Since(begin))
			}
			r.TotalMs = stats.Ms(time.Since(begin))
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("resume round %d: %w", round+1, err)
		}
		feed, err := cluster.LoadFeed(ctx, e.admin, from)
		if err != nil {
			return nil, err
		}
		r.Received, r.Check = len(seqs), feed.Check(fmt.Sprintf("round %d", round+1), id, from, seqs)
		res.OK = res.OK && r.Check.OK() && r.Received == cfg.ResumeBehind
		res.Rounds, totals, res.MaxMs = append(res.Rounds, r), append(totals, r.TotalMs), max(res.MaxMs, r.TotalMs)
		prog.Printf("resume round %d: %d notifications replayed in %.0f ms (first after %.0f ms); %s", round+1, r.Received, r.TotalMs, r.FirstMs, r.Check)
	}
	_ = e.admin.QueryRow(ctx, `SELECT count(*) FROM notify.notifications`).Scan(&res.TableRows)
	res.MedianMs = stats.Median(totals)
	res.RatePerS = float64(cfg.ResumeBehind) / (res.MedianMs / 1000)
	res.TargetMet = res.OK && res.MedianMs <= targetResumeMs
	if !res.OK {
		return res, fmt.Errorf("resume: a replay was not exactly once")
	}
	return res, nil
}

func (rs *ResumeResult) write(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n6. Resume far behind: a stream %s notifications behind reconnects with Last-Event-ID (%.1f others' notifications interleaved per one of its own; %s rows in the table at the end)\n",
		num(float64(r.cfg.ResumeBehind)), r.cfg.ResumeNoise, num(float64(rs.TableRows)))
	writeTable(w, "round\treplayed\tfirst after\tall after\texactly once", rowsOf(rs.Rounds, func(i int, rr ResumeRound) string {
		return fmt.Sprintf("%d\t%s\t%.0f ms\t%.0f ms\t%v", i+1, num(float64(rr.Received)), rr.FirstMs, rr.TotalMs, rr.Check.OK())
	})...)
	fmt.Fprintf(w, "   median %.0f ms (%s notifications/s), max %.0f ms; target median <= %d ms: %s\n",
		rs.MedianMs, num(rs.RatePerS), rs.MaxMs, targetResumeMs, verdict(rs.TargetMet))
}
