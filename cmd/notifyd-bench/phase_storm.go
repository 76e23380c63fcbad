package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// Targets of the storm (issue "lived-in database (1)").
const (
	stormRehomeTarget   = 3 * time.Second // every re-homed stream's first new notification
	stormSurvivorP99Ms  = 250.0           // the survivors' streams during the storm
	stormSampleInterval = 250 * time.Millisecond
)

// runStormPhase: a lived-in table (cfg.StormRows seeded), cfg.Nodes nodes,
// cfg.StormVictimStreams streams on the last node and
// cfg.StormSurvivorStreams on each other one, notifications at
// cfg.StormRate each to one role in turn (every stream gets one every
// StormRoles/StormRate seconds), and the last node SIGKILLed after
// cfg.StormBefore. Its clients reconnect as the browser client would, with
// Last-Event-ID, to the survivors. It measures how long each re-homed
// stream waits for its first notification committed after the kill, what
// the storm does to the survivors' streams, the worker's publishing and
// the feed, and checks every stream exactly once.
func runStormPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*StormResult, error) {
	if cfg.StormReplica > 0 {
		return runStormReplica(ctx, cfg, nr, prog, rep, stderr)
	}
	e, seed, err := nr.startReconnectNodes(ctx, cfg.Nodes, stormStreams(cfg), cfg.StormRows, prog)
	if err != nil {
		return newStormResult(cfg), err
	}
	defer e.Close()
	return runStorm(ctx, cfg, nr, e, seed, nil, prog, rep, stderr)
}

// stormStreams is the storm's number of streams.
func stormStreams(cfg config) int {
	return cfg.StormVictimStreams + (cfg.Nodes-1)*cfg.StormSurvivorStreams
}

// newStormResult is a storm's result before it runs: its settings.
func newStormResult(cfg config) *StormResult {
	return &StormResult{ReconnectRun: ReconnectRun{Nodes: cfg.Nodes, Streams: stormStreams(cfg), Rows: cfg.StormRows, Rate: cfg.StormRate,
		HTTPShare: cfg.HTTPShare, Browser: cfg.Browser}, VictimStreams: cfg.StormVictimStreams, SurvivorStreams: cfg.StormSurvivorStreams,
		Roles:         cfg.StormRoles,
		BeforeSeconds: cfg.StormBefore.Seconds(), AfterSeconds: cfg.StormAfter.Seconds(), WindowSeconds: cfg.StormWindow.Seconds(),
		TargetRehomeMs: stats.Ms(stormRehomeTarget), TargetSurvivorP99Ms: stormSurvivorP99Ms, Behind: cfg.StormBehind}
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
func runStorm(ctx context.Context, cfg config, nr *nodeRun, e *nodeEnv, seed *LivedSeed, mark func(moment string),
	prog *progress, rep *Report, stderr io.Writer) (*StormResult, error) {
	if mark == nil {
		mark = func(string) {}
	}
	victim := cfg.Nodes - 1
	streams := stormStreams(cfg)
	res := newStormResult(cfg)
	prog.Printf("storm: %s rows, %d nodes, %s streams on node%d and %s on each other node, %.0f notifications/s to %d roles in turn (one a stream every %.1f s), kill after %s",
		num(float64(cfg.StormRows)), cfg.Nodes, num(float64(cfg.StormVictimStreams)), victim, num(float64(cfg.StormSurvivorStreams)),
		cfg.StormRate, cfg.StormRoles, float64(cfg.StormRoles)/cfg.StormRate, cfg.StormBefore)
	res.Seed = seed
	pop := livedPopulation(streams, cfg.StormRoles)
	head, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return res, err
	}
	// Every stream starts from here, and is checked from here: with
	// -storm-behind, older than any node's window (each started at the
	// head), so every opening replays from the table.
	start := max(0, head-cfg.StormBehind)
	l, err := nr.newLayout(e, pop, streams, start)
	if err != nil {
		return res, err
	}
	// Streams are placed at random, so every role has streams on every node.
	place := make([]int, streams)
	for k := range place {
		if k >= cfg.StormVictimStreams {
			place[k] = (k - cfg.StormVictimStreams) % victim
		} else {
			place[k] = victim
		}
	}
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(place), func(i, j int) { place[i], place[j] = place[j], place[i] })
	l.moveStreams(func(k int) int { return place[k] })
	mark(stormOpening)
	cs, g, opened, openSecs, err := nr.openWithLoad(ctx, e, l, pop, cfg.StormRate, cluster.Mix{}, phaseStorm, prog, stderr)
	if err != nil {
		return res, err
	}
	mark(stormOpened)
	defer cs.Close()
	defer g.Close()
	res.Opened, res.OpenSeconds, res.Clients = opened, openSecs, len(l.plans)
	var turn atomic.Int64
	g.target = func(*rand.Rand) notify.Target {
		return notify.Target{Roles: []string{pop.Roles[int((turn.Add(1)-1)%int64(len(pop.Roles)))]}}
	}

	samp := startSampler(ctx, e.admin, 200*time.Millisecond)
	win := startCPU(e, cs)
	ld := g.background(ctx, cfg.StormBefore+cfg.StormAfter, phaseStorm, cs, streams, prog)
	res.LoadStart = ld.loadAvg
	var loadErr error
	select {
	case loadErr = <-ld.done:
		loadErr = fmt.Errorf("the load ended before the kill: %v", loadErr)
	case <-time.After(cfg.StormBefore):
	case <-ctx.Done():
		loadErr = ctx.Err()
	}
	var killAt time.Time
	if loadErr == nil {
		rep.Profiles = append(rep.Profiles, samp.Stop("storm: before the kill"))
		samp = startSampler(ctx, e.admin, 100*time.Millisecond)
		var on int
		on, killAt, loadErr = e.killNode(ctx, cs, victim, phaseStorm, prog, func() {
			res.HeadAtKill, _ = cluster.Head(ctx, e.admin)
			mark(stormKill)
		})
		res.Killed, res.KilledAtSeconds, res.StreamsOnKilled = "node"+itoa(victim), killAt.Sub(ld.start).Seconds(), on
		res.Timeline, loadErr = stormTimeline(ctx, e, victim, killAt, cfg.StormWindow, ld.done)
		mark(stormWindowd)
		rep.Profiles = append(rep.Profiles, samp.Stop(fmt.Sprintf("storm: the %s after the kill", cfg.StormWindow)))
		if loadErr == nil {
			loadErr = <-ld.done
		}
	} else {
		samp.Stop("storm")
	}
	res.CPU = win.stop(e, cs)
	cd, err := res.finish(ctx, cfg, e, cs, g, l, start, ld, loadErr)
	if err != nil {
		return res, fmt.Errorf("storm: %w", err)
	}
	pub, err := publishTimes(ctx, e, start)
	if err != nil {
		return res, err
	}
	res.measure(cd, g.commits, pub, place, victim, killAt, cfg.StormWindow)
	if res.Explains, err = stormPlans(ctx, e, pop.Users[slices.Index(place, victim)], res.HeadAtKill); err != nil {
		return res, err
	}
	return res, exactlyOnce(prog, "storm", res.Check)
}

// stormTimeline samples, for window after the kill, the streams open on
// the survivors and the stream head; it returns early if the load ends.
func stormTimeline(ctx context.Context, e *nodeEnv, victim int, killAt time.Time, window time.Duration, loadDone chan error) ([]StormSample, error) {
	var out []StormSample
	t := time.NewTicker(stormSampleInterval)
	defer t.Stop()
	end := time.After(time.Until(killAt.Add(window)))
	for {
		select {
		case err := <-loadDone:
			loadDone <- err // the caller reads it again
			return out, nil
		case <-end:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		case <-t.C:
		}
		s := StormSample{Seconds: time.Since(killAt).Seconds()}
		for i, n := range e.nodes {
			if i != victim {
				v, _ := n.Metric(ctx, "notifyd_streams_open")
				s.OpenOnSurvivors += int(v)
			}
		}
		s.Head, _ = cluster.Head(ctx, e.admin)
		out = append(out, s)
	}
}

// measure computes the storm's figures from every stream's deliveries:
// commits are the producer's commit times by notification id, pub the
// database's created_at and published_at by seq (unix nanoseconds).
func (r *StormResult) measure(cd *checkedStreams, commits map[string]int64, pub map[int64][2]int64, place []int, victim int,
	killAt time.Time, window time.Duration) {
	kill, end := killAt.UnixNano(), killAt.Add(window).UnixNano()
	before := kill - int64(window) // as long a stretch just before the kill, to compare
	var firsts, answers, reopens, survivors, survivorsBefore, feed, feedBefore []time.Duration
	within := 0
	for k, node := range place {
		first := int64(-1)
		cd.deliveries(k, commits, func(seq, at, c int64) {
			if node == victim {
				if c > kill && first < 0 {
					first = at
				}
				return
			}
			p, ok := pub[seq]
			switch {
			case c >= kill && c < end:
				survivors = append(survivors, time.Duration(at-c))
				if ok {
					feed = append(feed, time.Duration(at-p[1]))
				}
			case c >= before && c < kill:
				survivorsBefore = append(survivorsBefore, time.Duration(at-c))
				if ok {
					feedBefore = append(feedBefore, time.Duration(at-p[1]))
				}
			}
		})
		if node != victim {
			continue
		}
		if first < 0 {
			r.RehomedWithout++
		} else {
			firsts = append(firsts, time.Duration(first-kill))
			if time.Duration(first-kill) <= stormRehomeTarget {
				within++
			}
		}
		if p := cd.reports[k].Pace; p != nil {
			if d, ok := firstAfter(p.Opens, kill); ok {
				answers = append(answers, d)
			}
			if d, ok := firstAfter(p.Connected, kill); ok {
				reopens = append(reopens, d)
			}
			r.Backoffs += p.Backoffs
		}
	}
	r.Rehomed, r.Answered, r.Reopened = stats.Summarize(firsts), stats.Summarize(answers), stats.Summarize(reopens)
	r.RehomedWithinShare = float64(within) / float64(max(1, r.VictimStreams))
	r.Survivors, r.SurvivorsBefore = stats.Summarize(survivors), stats.Summarize(survivorsBefore)
	r.FeedLag, r.FeedLagBefore = stats.Summarize(feed), stats.Summarize(feedBefore)
	var worker, workerBefore []time.Duration
	perSecond := map[int]int{}
	for _, p := range pub {
		switch {
		case p[0] >= kill && p[0] < end:
			worker = append(worker, time.Duration(p[1]-p[0]))
		case p[0] >= before && p[0] < kill:
			workerBefore = append(workerBefore, time.Duration(p[1]-p[0]))
		}
		if p[1] >= before && p[1] < end {
			perSecond[int(math.Floor(float64(p[1]-kill)/1e9))]++
		}
	}
	r.WorkerLag, r.WorkerLagBefore = stats.Summarize(worker), stats.Summarize(workerBefore)
	for s := int(-window.Seconds()); s < int(window.Seconds()); s++ {
		r.PublishedPerSecond = append(r.PublishedPerSecond, perSecond[s])
	}
	r.RehomeMet = r.RehomedWithout == 0 && within == r.VictimStreams
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

// stormPlans explains, for one of the killed node's users, the statements
// its stream's reopening ran on the lived-in table: the unread count (the
// opening statement's costly part) and the replay from the head at the
// kill; with each, the plan the plan cache settles on.
func stormPlans(ctx context.Context, e *nodeEnv, id notify.Identity, after int64) (map[string][]LivedPlan, error) {
	out := map[string][]LivedPlan{}
	return out, explainUser(ctx, e, id, after, out, func(stmt string) string { return stmt + " (" + id.UserID + ")" })
}
