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

// openOneNode starts one node with env (and room for streams) and opens
// streams live on it, streamsPerUserOneNode to a user of a population
// drawn with seed whose users are named prefix0, prefix1, …; the caller
// closes e and cs.
func (nr *nodeRun) openOneNode(ctx context.Context, phase string, streams int, seed uint64, prefix string, env map[string]string,
	prog *progress, stderr io.Writer) (e *nodeEnv, l *layout, cs *fleet.Fleet, opened int, openSecs float64, err error) {
	settings := map[string]string{"NOTIFY_MAX_STREAMS": strconv.Itoa(streams + 1000)}
	maps.Copy(settings, env)
	if e, err = nr.startNodes(ctx, 1, settings); err != nil {
		return nil, nil, nil, 0, 0, err
	}
	pop := cluster.NewPopulation(rand.New(rand.NewPCG(seed, seed)), prefix, (streams+streamsPerUserOneNode-1)/streamsPerUserOneNode, 10, 2)
	if l, err = e.newLayout(pop, streams, -1, nil); err == nil {
		cs, opened, openSecs, err = l.open(ctx, prog, phase, nil, stderr)
	}
	if err != nil {
		e.Close()
		return nil, nil, nil, 0, 0, err
	}
	return e, l, cs, opened, openSecs, nil
}

// StreamsResult is the streams phase: many idle streams on one node.
type StreamsResult struct {
	Streams     int     `json:"streams"`
	Opened      int     `json:"opened"`
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
	TargetMet    bool      `json:"target_met"`
	BeatsOK      bool      `json:"heartbeats_ok"`
}

// runStreamsPhase holds cfg.HoldStreams idle streams on one node for
// cfg.Hold with heartbeats every cfg.Heartbeat, and measures the node's
// resident memory and that every stream's heartbeats keep arriving.
func runStreamsPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*StreamsResult, error) {
	s := cfg.HoldStreams
	prog.Printf("streams: %d streams on one node for %s, heartbeat every %s", s, cfg.Hold, cfg.Heartbeat)
	e, l, cs, opened, openSecs, err := nr.openOneNode(ctx, phaseStreams, s, 1, "hold", map[string]string{
		"NOTIFY_HEARTBEAT_INTERVAL": cfg.Heartbeat.String(),
		"NOTIFY_CONN_TIMEOUT":       max(60*time.Second, 4*cfg.Heartbeat).String(),
	}, prog, stderr)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	defer cs.Close()
	res := &StreamsResult{Streams: s, Opened: opened, Clients: len(l.plans), OpenSeconds: openSecs,
		HoldSeconds: cfg.Hold.Seconds(), Heartbeat: cfg.Heartbeat.Seconds()}
	if err := cs.MarkHeartbeats(); err != nil {
		return nil, err
	}
	samp := startSampler(ctx, e.admin, 500*time.Millisecond)
	win := startCPU(e, cs)
	for n, end := 1, time.Now().Add(cfg.Hold); time.Now().Before(end); n++ {
		if err := sleepCtx(ctx, time.Second); err != nil {
			return nil, err
		}
		rss, _ := e.nodes[0].RSS()
		res.PeakRSSMiB = max(res.PeakRSSMiB, mib(rss))
		if n%5 == 0 {
			st := cs.Stats()
			prog.Printf("streams: holding %d, node RSS %.0f MiB (%.1f KiB a stream), heartbeats: fewest %d, longest gap %d ms, %d drops",
				st.Open, mib(rss), float64(rss)/1024/float64(max(1, st.Open)), st.BeatsMin, st.MaxBeatGapMs, st.Drops)
		}
	}
	res.CPU = win()
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseStreams))
	if mem := e.memory(ctx); len(mem) == 1 {
		res.Memory = mem[0]
	}
	res.PeakRSSMiB = max(res.PeakRSSMiB, res.Memory.RSSMiB)
	reports, err := cs.Report(ctx, false)
	if err != nil {
		return nil, err
	}
	res.BeatsMin = -1
	for _, r := range reports {
		st := r.Stats
		if res.BeatsMin < 0 || st.Heartbeats < res.BeatsMin {
			res.BeatsMin = st.Heartbeats
		}
		if st.Heartbeats == 0 {
			res.NoBeats++
		}
		res.MaxBeatGapMs = max(res.MaxBeatGapMs, st.MaxBeatGapMs)
		res.Drops += st.Drops
	}
	res.ClientRSSMiB = mib(cs.Stats().RSS)
	// A stream held for Hold sees at least Hold/Heartbeat - 1 heartbeats
	// (the first may fall just before the mark), and never waits much more
	// than an interval for one.
	res.BeatsWanted = max(1, int(cfg.Hold/cfg.Heartbeat)-1)
	res.BeatsOK = res.NoBeats == 0 && res.BeatsMin >= res.BeatsWanted && res.Drops == 0 &&
		res.MaxBeatGapMs <= 2*cfg.Heartbeat.Milliseconds()
	res.TargetMet = res.Opened == s && res.PeakRSSMiB <= targetRSSMiB && res.Memory.PerStreamKiB <= targetPerStreamKiB && res.BeatsOK
	prog.Printf("streams: %d streams, node RSS %.0f MiB (peak %.0f), %.1f KiB a stream (%.1f above the empty node); heartbeats: fewest %d (want %d), %d streams without, longest gap %d ms",
		res.Memory.Streams, res.Memory.RSSMiB, res.PeakRSSMiB, res.Memory.PerStreamKiB, res.Memory.MarginalKiB, res.BeatsMin, res.BeatsWanted, res.NoBeats, res.MaxBeatGapMs)
	if !res.BeatsOK {
		return res, fmt.Errorf("streams: heartbeats did not reach every stream (fewest %d of %d wanted, %d streams without, longest gap %d ms, %d drops)",
			res.BeatsMin, res.BeatsWanted, res.NoBeats, res.MaxBeatGapMs, res.Drops)
	}
	return res, nil
}

func (s *StreamsResult) write(w io.Writer, _ *Report) {
	fmt.Fprintf(w, "\n4. Concurrent streams on one node: %s streams (%d client processes), held %.0f s with a heartbeat every %.0f s\n",
		num(float64(s.Streams)), s.Clients, s.HoldSeconds, s.Heartbeat)
	writeTable(w, "",
		fmt.Sprintf("streams open (node's notifyd_streams_open)\t%s of %s\topened in %.1f s", num(float64(s.Memory.Streams)), num(float64(s.Streams)), s.OpenSeconds),
		fmt.Sprintf("node RSS\t%.0f MiB (peak %.0f)\ttarget <= %d MiB: %s", s.Memory.RSSMiB, s.PeakRSSMiB, targetRSSMiB, verdict(s.PeakRSSMiB <= targetRSSMiB)),
		fmt.Sprintf("RSS per stream\t%.1f KiB (%.1f KiB above the empty node's %.0f MiB)\ttarget <= %d KiB: %s",
			s.Memory.PerStreamKiB, s.Memory.MarginalKiB, s.Memory.BaselineMiB, targetPerStreamKiB, verdict(s.Memory.PerStreamKiB <= targetPerStreamKiB)),
		fmt.Sprintf("heartbeats per stream during the hold\tfewest %d (want >= %d), %d streams without\tlongest wait %d ms: %s",
			s.BeatsMin, s.BeatsWanted, s.NoBeats, s.MaxBeatGapMs, verdict(s.BeatsOK)),
		fmt.Sprintf("client processes' RSS\t%.0f MiB\t", s.ClientRSSMiB))
	writeCPU(w, s.CPU)
}

// BroadcastResult is the broadcast phase: notifications to every stream
// of a node, one at a time. LastReceipt is, per broadcast, its commit to
// its receipt on the last stream; AllReceipts is commit to receipt on
// each stream.
type BroadcastResult struct {
	Streams               int           `json:"streams"`
	Opened                int           `json:"opened"`
	Broadcasts            int           `json:"broadcasts"`
	LastReceipt           stats.Summary `json:"last_receipt"`
	AllReceipts           stats.Summary `json:"all_receipts"`
	Check                 cluster.Check `json:"check"`
	Memory                NodeMemory    `json:"memory"`
	CPU                   []ProcCPU     `json:"cpu"`
	NodeCPUPerBroadcastMs float64       `json:"node_cpu_per_broadcast_ms"`
	TargetMet             bool          `json:"target_met"`
}

// runBroadcastPhase opens cfg.BroadcastStreams streams on one node, then
// inserts cfg.Broadcasts notifications to everyone, one every
// cfg.BroadcastInterval, and measures from each one's commit (the insert
// returning to the bench) to its receipt on each stream, and on the last.
func runBroadcastPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*BroadcastResult, error) {
	s := cfg.BroadcastStreams
	prog.Printf("broadcast: %d streams on one node, %d broadcasts %s apart", s, cfg.Broadcasts, cfg.BroadcastInterval)
	e, l, cs, opened, _, err := nr.openOneNode(ctx, phaseBroadcast, s, 2, "bc", nil, prog, stderr)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	defer cs.Close()
	// The streams opened live (no Last-Event-ID) before anything was
	// published: each must receive everything after this head.
	start, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return nil, err
	}
	res := &BroadcastResult{Streams: s, Opened: opened, Broadcasts: cfg.Broadcasts}
	samp := startSampler(ctx, e.admin, 100*time.Millisecond)
	win := startCPU(e, cs)
	commits := map[string]int64{} // unix nanoseconds
	for b := range cfg.Broadcasts {
		if err := sleepCtx(ctx, cfg.BroadcastInterval); err != nil {
			return nil, err
		}
		ids, err := cluster.Insert(ctx, e.admin, []notify.Target{{}}, "bench", "")
		if err != nil {
			return nil, fmt.Errorf("broadcast: %w", err)
		}
		commits[ids[0]] = time.Now().UnixNano()
		if (b+1)%5 == 0 {
			prog.Printf("broadcast: %d of %d sent, %d deliveries so far", b+1, cfg.Broadcasts, cs.Stats().Received)
		}
	}
	sentinel, err := cluster.PublishSentinel(ctx, e.admin, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	if behind, err := cs.WaitSeq(ctx, sentinel, cfg.Timeout); err != nil {
		return nil, fmt.Errorf("broadcast: %d streams did not receive everything: %w", behind, err)
	}
	res.CPU = win()
	rep.Profiles = append(rep.Profiles, samp.Stop(phaseBroadcast))
	if mem := e.memory(ctx); len(mem) == 1 {
		res.Memory = mem[0]
	}
	res.NodeCPUPerBroadcastMs = res.CPU[0].CPUSeconds * 1000 / float64(cfg.Broadcasts+1)
	var tally StreamTally
	cd, err := checkStreams(ctx, e, cs, l, start, &tally)
	if err != nil {
		return nil, err
	}
	res.Check = tally.Check
	last := map[int64]time.Duration{} // per broadcast seq: the latest receipt
	var all []time.Duration
	for k := range l.ids {
		cd.deliveries(k, commits, func(seq, at, c int64) { // the sentinel has no commit time
			all = append(all, time.Duration(at-c))
			last[seq] = max(last[seq], time.Duration(at-c))
		})
	}
	res.LastReceipt, res.AllReceipts = stats.Summarize(slices.Collect(maps.Values(last))), stats.Summarize(all)
	res.TargetMet = res.Check.OK() && len(last) == cfg.Broadcasts && res.LastReceipt.P99Ms <= targetBroadcastP99Ms
	prog.Printf("broadcast: commit to last stream p50 %.0f ms, p99 %.0f ms, max %.0f ms; to each stream p50 %.0f ms, p99 %.0f ms",
		res.LastReceipt.P50Ms, res.LastReceipt.P99Ms, res.LastReceipt.MaxMs, res.AllReceipts.P50Ms, res.AllReceipts.P99Ms)
	return res, exactlyOnce(prog, phaseBroadcast, res.Check)
}

func (b *BroadcastResult) write(w io.Writer, _ *Report) {
	fmt.Fprintf(w, "\n5. Broadcast to every stream of one node: %s streams, %d notifications to everyone, one at a time\n",
		num(float64(b.Streams)), b.Broadcasts)
	writeTable(w, "commit to receipt"+summaryHeader+"\ttarget",
		summaryRow("on the last stream, per broadcast", b.LastReceipt, fmt.Sprintf("p99 <= %d ms: %s", targetBroadcastP99Ms, verdict(b.TargetMet))),
		summaryRow("on each stream", b.AllReceipts, ""))
	fmt.Fprintf(w, "   exactly-once: %s\n", checkLine(b.Check))
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
	Behind    int           `json:"behind"`
	Noise     float64       `json:"noise"`
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
func runResumePhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report) (*ResumeResult, error) {
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
	res := &ResumeResult{Behind: cfg.ResumeBehind, Noise: cfg.ResumeNoise, OK: true}
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
		res.Rounds = append(res.Rounds, r)
		totals = append(totals, r.TotalMs)
		res.MaxMs = max(res.MaxMs, r.TotalMs)
		prog.Printf("resume round %d: %d notifications replayed in %.0f ms (first after %.0f ms); %s",
			round+1, r.Received, r.TotalMs, r.FirstMs, r.Check)
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

func (rs *ResumeResult) write(w io.Writer, _ *Report) {
	fmt.Fprintf(w, "\n6. Resume far behind: a stream %s notifications behind reconnects with Last-Event-ID (%.1f others' notifications interleaved per one of its own; %s rows in the table at the end)\n",
		num(float64(rs.Behind)), rs.Noise, num(float64(rs.TableRows)))
	writeTable(w, "round\treplayed\tfirst after\tall after\texactly once", rowsOf(rs.Rounds, func(i int, rr ResumeRound) string {
		return fmt.Sprintf("%d\t%s\t%.0f ms\t%.0f ms\t%v", i+1, num(float64(rr.Received)), rr.FirstMs, rr.TotalMs, rr.Check.OK())
	})...)
	fmt.Fprintf(w, "   median %.0f ms (%s notifications/s), max %.0f ms; target median <= %d ms: %s\n",
		rs.MedianMs, num(rs.RatePerS), rs.MaxMs, targetResumeMs, verdict(rs.TargetMet))
}
