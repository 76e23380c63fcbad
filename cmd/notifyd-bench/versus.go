package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/stats"
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
	CentrifugoVersion string  `json:"centrifugo_version"`
	Publish           string  `json:"publish"` // how notifyd's messages were published (-versus-publish)
	BuildSeconds      float64 `json:"centrifugo_build_seconds"`
	Streams           int     `json:"streams"`
	Rate              int     `json:"rate"`
	Seconds           float64 `json:"seconds"`
	Rounds            int     `json:"rounds"`
	SatStreams        int     `json:"sat_streams"`
	SatSeconds        float64 `json:"sat_seconds"`
	SatPublishers     int     `json:"sat_publishers"`
	SatWindow         int     `json:"sat_window"`

	Memory     []versusMemory `json:"memory"`
	Latency    []versusRun    `json:"latency"`
	Saturation []versusRun    `json:"saturation"`

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
func runVersusPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, stderr io.Writer) (*VersusResult, error) {
	res := &VersusResult{CentrifugoVersion: centrifugoVersion, Publish: cfg.VersusPublish, Streams: cfg.VersusStreams, Rate: cfg.VersusRate,
		Seconds: cfg.VersusDuration.Seconds(), Rounds: cfg.VersusRounds, SatStreams: cfg.VersusSatStreams,
		SatSeconds: cfg.VersusSatDuration.Seconds(), SatPublishers: cfg.VersusSatPublishers, SatWindow: cfg.VersusWindow}
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
			sys.Name(), m.Streams, m.PerStreamKiB, m.MarginalKiB, m.IdleMiB)
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
	r.RSSPerStreamKiB = medianBy(r.Memory, func(m versusMemory) string { return m.System }, func(m versusMemory) float64 { return m.PerStreamKiB })
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
func (v *VersusResult) write(w io.Writer, _ *Report) {
	built := "given with -centrifugo-bin"
	if v.BuildSeconds > 0 {
		built = fmt.Sprintf("built from the module proxy in %.0f s", v.BuildSeconds)
	}
	fmt.Fprintf(w, "\nVersus Centrifugo %s (%s; memory broker, uni_sse): the same SSE reader in the bench, runs interleaved, medians of %d\n",
		v.CentrifugoVersion, built, v.Rounds)
	fmt.Fprintf(w, "   latency: %d streams, one publisher at %d/s for %.0f s (notifyd: %s;\n"+
		"   Centrifugo: HTTP API publish to the channel every stream subscribed to, clock at the request's start)\n", v.Streams, v.Rate, v.Seconds, versusPublishDoc[v.Publish])
	writeTable(w, "round\tsystem\tachieved\tp50\tp90\tp99\tmax\tdeliveries\tpublish call p50/p99\tCPU-s server/bench",
		rowsOf(v.Latency, func(_ int, l versusRun) string {
			return fmt.Sprintf("%d\t%s\t%.0f/s\t%.2f ms\t%.2f ms\t%.2f ms\t%.1f ms\t%s\t%.2f/%.2f ms\t%.1f/%.1f", l.Round, l.System, l.Achieved,
				l.Latency.P50Ms, l.Latency.P90Ms, l.Latency.P99Ms, l.Latency.MaxMs, num(float64(l.Latency.Count)), l.PublishP50, l.PublishP99,
				l.ServerCPU, l.BenchCPU)
		})...)
	fmt.Fprintf(w, "   saturation: %d streams, %d publishers as fast as they can for %.0f s, at most %d messages not yet on every stream\n",
		v.SatStreams, v.SatPublishers, v.SatSeconds, v.SatWindow)
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
			m.System, m.Streams, m.PerStreamKiB, m.MarginalKiB, m.IdleMiB)
	}
}

// versusPublishDoc says how notifyd's messages were published and where
// their clock starts, per -versus-publish.
var versusPublishDoc = map[string]string{
	versusInsert: "single-row INSERT to everyone, clock at commit",
	versusSend:   "SELECT notify.send(...) to everyone, born published, clock at the call's start",
	versusHTTP:   "POST /api/notifications to everyone, born published, clock at the request's start",
}
