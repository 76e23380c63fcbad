package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// Targets of the storm (issue "lived-in database (1)").
const (
	stormRehomeTarget  = 3 * time.Second // every re-homed stream's first new notification
	stormSurvivorP99Ms = 250.0           // the survivors' streams during the storm
)

// StormResult is the storm phase: a node holding most streams killed on a
// lived-in table, its clients re-homed on the survivors.
type StormResult struct {
	LoadRun
	Killed          string  `json:"killed"`
	KilledAtSeconds float64 `json:"killed_at_seconds"`
	StreamsOnKilled int     `json:"streams_on_killed"`
	// Rehomed is, over the killed node's streams, the time from the kill to
	// the receipt of the stream's first notification committed after the
	// kill; RehomedWithout counts streams that got none before the end.
	// Sent is the time from the kill to the first stream request the
	// client sent after it (its backoff over), Answered to the new
	// connection's 200 (a stream answers before its turn at the database),
	// Reopened to its connected message (after its turn).
	Rehomed            stats.Summary `json:"rehomed_first_new"`
	RehomedWithout     int           `json:"rehomed_without_new"`
	RehomedWithinShare float64       `json:"rehomed_within_target_share"`
	Sent               stats.Summary `json:"rehomed_sent"`
	Answered           stats.Summary `json:"rehomed_answered"`
	Reopened           stats.Summary `json:"rehomed_connected"`
	// The survivors' streams, commit → receipt, and the two parts of it:
	// WorkerLag created_at → published_at (the queue: wake-up, claim,
	// publish start), FeedLag published_at → receipt (publish and commit,
	// NOTIFY, the feed's read, the hub, the write); each for notifications
	// committed in the storm window and in as long a stretch before the
	// kill.
	Survivors       stats.Summary `json:"survivors_storm"`
	SurvivorsBefore stats.Summary `json:"survivors_before"`
	WorkerLag       stats.Summary `json:"worker_lag_storm"`
	WorkerLagBefore stats.Summary `json:"worker_lag_before"`
	FeedLag         stats.Summary `json:"feed_lag_storm"`
	FeedLagBefore   stats.Summary `json:"feed_lag_before"`
	// PublishedPerSecond counts notifications published in each second from
	// one window before the kill to one window after it.
	PublishedPerSecond []int         `json:"published_per_second"`
	Timeline           []StormSample `json:"timeline"`
	HeadAtKill         int64         `json:"head_at_kill"`
	// Explains: a re-homed user's statements on the lived-in table, custom
	// and cached plan (EXPLAIN ANALYZE, BUFFERS).
	Explains     map[string][]LivedPlan `json:"explains"`
	CPU          []ProcCPU              `json:"cpu"`
	RehomeMet    bool                   `json:"rehome_met"`
	SurvivorsMet bool                   `json:"survivors_met"`
}

// StormSample is the cluster some time after the kill.
type StormSample struct {
	Seconds         float64 `json:"seconds_after_kill"`
	OpenOnSurvivors int     `json:"open_on_survivors"`
	Head            int64   `json:"head"`
}

// runStormPhase: a lived-in table (cfg.StormRows seeded), cfg.Nodes nodes,
// cfg.StormVictimStreams streams on the last node and
// cfg.StormSurvivorStreams on each other one, notifications at
// cfg.StormRate each to one role in turn, and the last node SIGKILLed after
// cfg.StormBefore. Its clients reconnect as the browser client would, with
// Last-Event-ID, to the survivors. It measures how long each re-homed
// stream waits for its first notification committed after the kill, what
// the storm does to the survivors' streams, the worker's publishing and
// the feed, and checks every stream exactly once. With -storm-replica it
// runs on a private cluster with a standby (runStormReplica).
func (nr *nodeRun) runStormPhase(ctx context.Context) (*StormResult, error) {
	cfg := nr.cfg
	if cfg.StormReplica > 0 {
		return runStormReplica(ctx, nr)
	}
	e, seed, err := nr.startSeededNodes(ctx, cfg.Nodes, stormStreams(cfg), cfg.StormRows, nil)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return runStorm(ctx, e, seed, nil)
}

func stormStreams(cfg config) int {
	return cfg.StormVictimStreams + (cfg.Nodes-1)*cfg.StormSurvivorStreams
}

// Moments of a storm run that mark (when not nil) is told of, in order:
// before its streams open, once they are open (the load starts), just
// before the kill, and at the end of the storm window after it.
const (
	stormOpening = "opening"
	stormOpened  = "opened"
	stormKill    = "kill"
	stormWindowd = "window"
)

// runStorm runs one storm on e's nodes (all running, on the seeded
// table): streams open, load, kill, re-homing, the checks.
func runStorm(ctx context.Context, e *nodeEnv, seed *LivedSeed, mark func(moment string)) (*StormResult, error) {
	cfg, prog, rep := e.run.cfg, e.run.prog, e.run.rep
	if mark == nil {
		mark = func(string) {}
	}
	victim, streams := cfg.Nodes-1, stormStreams(cfg)
	res := &StormResult{LoadRun: LoadRun{Rows: cfg.StormRows, Seed: seed}}
	prog.Printf("storm: %s rows, %d nodes, %s streams on node%d and %s on each other node, %.0f notifications/s to %d roles in turn (one a stream every %.1f s), kill after %s",
		num(float64(cfg.StormRows)), cfg.Nodes, num(float64(cfg.StormVictimStreams)), victim, num(float64(cfg.StormSurvivorStreams)),
		cfg.StormRate, cfg.StormRoles, float64(cfg.StormRoles)/cfg.StormRate, cfg.StormBefore)
	pop := livedPopulation(streams, cfg.StormRoles)
	head, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return res, err
	}
	// Every stream starts from here, and is checked from here: with
	// -storm-behind, older than any node's window (each started at the
	// head), so every opening replays from the table. Streams are placed
	// at random, so every role has streams on every node.
	start := max(0, head-cfg.StormBehind)
	place := make([]int, streams)
	for k := range place {
		place[k] = victim
		if k >= cfg.StormVictimStreams {
			place[k] = (k - cfg.StormVictimStreams) % victim
		}
	}
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(place), func(i, j int) { place[i], place[j] = place[j], place[i] })
	mark(stormOpening)
	lp, err := e.openLoad(ctx, phaseStorm, pop, streams, start, func(k int) int { return place[k] }, &cfg.Browser,
		cfg.StormRate, cluster.Mix{}, &res.LoadRun)
	if err != nil {
		return res, err
	}
	defer lp.Close()
	mark(stormOpened)
	var turn atomic.Int64
	lp.g.target = func(*rand.Rand) notify.Target {
		return notify.Target{Roles: []string{pop.Roles[int((turn.Add(1)-1)%int64(len(pop.Roles)))]}}
	}
	samp := startSampler(ctx, e.admin, 200*time.Millisecond)
	win := startCPU(e, lp.cs)
	lp.background(ctx, cfg.StormBefore+cfg.StormAfter)
	loadErr := lp.wait(ctx, cfg.StormBefore)
	var killAt time.Time
	if loadErr == nil {
		rep.Profiles = append(rep.Profiles, samp.Stop("storm: before the kill"))
		samp = startSampler(ctx, e.admin, 100*time.Millisecond)
		res.StreamsOnKilled, killAt, loadErr = e.killNode(ctx, lp.cs, victim, phaseStorm, func() {
			res.HeadAtKill, _ = cluster.Head(ctx, e.admin)
			mark(stormKill)
		})
		res.Killed, res.KilledAtSeconds = "node"+strconv.Itoa(victim), killAt.Sub(lp.began).Seconds()
		if loadErr == nil {
			res.Timeline, loadErr = stormTimeline(ctx, lp, victim, killAt, cfg.StormWindow)
		}
		mark(stormWindowd)
		rep.Profiles = append(rep.Profiles, samp.Stop(fmt.Sprintf("storm: the %s after the kill", cfg.StormWindow)))
		if loadErr == nil {
			loadErr = <-lp.done
		}
	} else {
		samp.Stop("storm")
	}
	res.CPU = win()
	cd, err := lp.finish(ctx, loadErr)
	if err != nil {
		return res, err
	}
	res.measure(cd, lp.g.commits, place, victim, killAt, cfg.StormWindow)
	id := pop.Users[slices.Index(place, victim)]
	res.Explains = map[string][]LivedPlan{}
	if err := explainUser(ctx, e, id, res.HeadAtKill, res.Explains, func(stmt string) string { return stmt + " (" + id.UserID + ")" }); err != nil {
		return res, err
	}
	return res, exactlyOnce(prog, "storm", res.Check)
}

// stormTimeline samples, every 250 ms for window after the kill, the
// streams open on the survivors and the stream head; it returns early if
// the load ends.
func stormTimeline(ctx context.Context, lp *loadPhase, victim int, killAt time.Time, window time.Duration) ([]StormSample, error) {
	var out []StormSample
	for time.Until(killAt.Add(window)) > 0 {
		if err := lp.wait(ctx, 250*time.Millisecond); err != nil {
			return out, ctx.Err() // the load's end is the caller's to read
		}
		s := StormSample{Seconds: time.Since(killAt).Seconds()}
		for i := range lp.e.nodes {
			if i != victim {
				s.OpenOnSurvivors += lp.e.streamsOn(ctx, i)
			}
		}
		s.Head, _ = cluster.Head(ctx, lp.e.admin)
		out = append(out, s)
	}
	return out, nil
}

// measure computes the storm's figures from every stream's deliveries
// (commits are the producer's commit times by notification id) and the
// feed's created_at and published_at.
func (r *StormResult) measure(cd *checkedStreams, commits map[string]int64, place []int, victim int, killAt time.Time, window time.Duration) {
	kill, end := killAt.UnixNano(), killAt.Add(window).UnixNano()
	before := kill - int64(window) // as long a stretch just before the kill, to compare
	// stretch is 0 for a time in the storm window, 1 in the stretch before.
	stretch := func(t int64) int {
		switch {
		case t >= kill && t < end:
			return 0
		case t >= before && t < kill:
			return 1
		}
		return -1
	}
	var firsts, sends, answers, reopens []time.Duration
	var survivors, feed, worker [2][]time.Duration
	first := map[int]int64{} // a victim stream's first receipt of a notification committed after the kill
	cd.each(commits, func(k int, seq, at, c int64) {
		if place[k] == victim {
			if f, ok := first[k]; c > kill && (!ok || at < f) {
				first[k] = at
			}
		} else if w := stretch(c); w >= 0 {
			survivors[w] = append(survivors[w], time.Duration(at-c))
			if p, ok := cd.feed.Get(seq); ok {
				feed[w] = append(feed[w], time.Duration(at-p.PublishedAt.UnixNano()))
			}
		}
	})
	within := 0
	for k, node := range place {
		if node != victim {
			continue
		}
		if f, ok := first[k]; !ok {
			r.RehomedWithout++
		} else if firsts = append(firsts, time.Duration(f-kill)); time.Duration(f-kill) <= stormRehomeTarget {
			within++
		}
		if p := cd.reports[k].Pace; p != nil {
			if d, ok := firstAfter(p.Sent, kill); ok {
				sends = append(sends, d)
			}
			if d, ok := firstAfter(p.Opens, kill); ok {
				answers = append(answers, d)
			}
			if d, ok := firstAfter(p.Connected, kill); ok {
				reopens = append(reopens, d)
			}
		}
	}
	perSecond := map[int]int{}
	for seq := cd.feed.After + 1; seq <= cd.feed.Last; seq++ {
		p, ok := cd.feed.Get(seq)
		if !ok {
			continue
		}
		if w := stretch(p.CreatedAt.UnixNano()); w >= 0 {
			worker[w] = append(worker[w], p.PublishedAt.Sub(p.CreatedAt))
		}
		if pub := p.PublishedAt.UnixNano(); pub >= before && pub < end {
			perSecond[int(math.Floor(float64(pub-kill)/1e9))]++
		}
	}
	for s := int(-window.Seconds()); s < int(window.Seconds()); s++ {
		r.PublishedPerSecond = append(r.PublishedPerSecond, perSecond[s])
	}
	r.Rehomed, r.Sent, r.Answered, r.Reopened = stats.Summarize(firsts), stats.Summarize(sends), stats.Summarize(answers), stats.Summarize(reopens)
	r.RehomedWithinShare = float64(within) / float64(max(1, len(firsts)+r.RehomedWithout))
	r.Survivors, r.SurvivorsBefore = stats.Summarize(survivors[0]), stats.Summarize(survivors[1])
	r.FeedLag, r.FeedLagBefore = stats.Summarize(feed[0]), stats.Summarize(feed[1])
	r.WorkerLag, r.WorkerLagBefore = stats.Summarize(worker[0]), stats.Summarize(worker[1])
	r.RehomeMet = r.RehomedWithout == 0 && within == len(firsts)
	r.SurvivorsMet = r.Survivors.Count > 0 && r.Survivors.P99Ms <= stormSurvivorP99Ms
}

// firstAfter is the time from t to the first of times (unix microseconds)
// after it.
func firstAfter(times []int64, t int64) (time.Duration, bool) {
	for _, x := range times {
		if x*1000 > t {
			return time.Duration(x*1000 - t), true
		}
	}
	return 0, false
}

func (s *StormResult) write(w io.Writer, r *Report) {
	c := r.cfg
	fmt.Fprintf(w, "\n9. Reconnect storm on a lived-in table: %s published notifications seeded; %d nodes, %s streams on %s and %s on each other node (%d client processes)\n",
		num(float64(s.Rows)), s.Nodes, num(float64(c.StormVictimStreams)), s.Killed, num(float64(c.StormSurvivorStreams)), s.Clients)
	fmt.Fprintf(w, "   load: %.0f notifications/s (%.0f%% over HTTP), each to one of %d roles in turn: every stream gets one every %.1f s; achieved %s/s, %s deliveries\n",
		s.Rate, 100*s.HTTPShare, c.StormRoles, float64(c.StormRoles)/s.Rate, num(s.AchievedRate), num(float64(s.Deliveries)))
	fmt.Fprintf(w, "   %s SIGKILLed at %.1f s holding %d streams; clients reconnect as the browser client does (full-jitter backoff from %d ms; a closing status's reconnectAfter), with Last-Event-ID, to a survivor\n",
		s.Killed, s.KilledAtSeconds, s.StreamsOnKilled, s.Browser.InitialMs)
	writeTable(w, summaryHeader+"\ttarget",
		summaryRow("re-homed: kill -> first notification committed after it", s.Rehomed, fmt.Sprintf("all <= %.0f ms: %s (%.1f%% within, %d got none)",
			stats.Ms(stormRehomeTarget), verdict(s.RehomeMet), 100*s.RehomedWithinShare, s.RehomedWithout)),
		summaryRow("re-homed: kill -> first request sent (after the client's backoff)", s.Sent, ""),
		summaryRow("re-homed: kill -> new connection answered 200", s.Answered, ""),
		summaryRow("re-homed: kill -> its connected message (turn at the database done)", s.Reopened, ""),
		summaryRow(fmt.Sprintf("survivors' streams, commit -> receipt, storm (%.0f s after the kill)", c.StormWindow.Seconds()), s.Survivors,
			fmt.Sprintf("p99 <= %.0f ms: %s", stormSurvivorP99Ms, verdict(s.SurvivorsMet))),
		summaryRow(fmt.Sprintf("survivors' streams, commit -> receipt, %.0f s before the kill", c.StormWindow.Seconds()), s.SurvivorsBefore, ""),
		summaryRow("worker: created -> published, storm", s.WorkerLag, ""),
		summaryRow("worker: created -> published, before", s.WorkerLagBefore, ""),
		summaryRow("feed: published -> survivor receipt, storm", s.FeedLag, ""),
		summaryRow("feed: published -> survivor receipt, before", s.FeedLagBefore, ""))
	fmt.Fprintf(w, "   published per second, %.0f s before the kill to %.0f s after: %s\n", c.StormWindow.Seconds(), c.StormWindow.Seconds(), strings.Trim(fmt.Sprint(s.PublishedPerSecond), "[]"))
	var tl []string
	for i, t := range s.Timeline {
		if i%4 == 3 || i == len(s.Timeline)-1 {
			tl = append(tl, fmt.Sprintf("%.0fs %s", t.Seconds, num(float64(t.OpenOnSurvivors))))
		}
	}
	fmt.Fprintf(w, "   streams open on the survivors after the kill: %s\n", strings.Join(tl, ", "))
	for _, name := range slices.Sorted(maps.Keys(s.Explains)) {
		fmt.Fprintf(w, "   %s after the kill, buffers hit+read and execution+planning (custom / cached plan): %s\n", name, planCell(s.Explains[name]))
	}
	s.writeEnd(w)
	writeCPU(w, s.CPU)
}
