package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// livedWarmup is how many untimed rounds of every operation go first at
// each size: the node's connections, its token keys and the cached pages
// are in place before the clock starts, as on a node that has been up.
const livedWarmup = 10

// runLivedPhase shows what one user's reads cost as the table grows: the
// table is seeded with published history to each of cfg.LivedSizes in
// turn, and at each size one node serves a sparse and a dense user's
// stream openings, resumes, unread counts and history pages over HTTP.
// Every answer is checked against the plan of what the user has.
func runLivedPhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report) (*LivedResult, error) {
	sizes := cfg.LivedSizes
	prog.Printf("lived: reads of one user as the table grows to %s rows (%s users, %d roles in the background), %d repetitions per size",
		num(float64(sizes[len(sizes)-1])), num(livedUsers), livedRoles, cfg.LivedReps)
	e, err := nr.startNodes(ctx, 1, map[string]string{
		"NOTIFY_RETENTION": "8760h", // the seeded history goes back 30 days: keep it all
		// Streams open one after another; the node may not have seen the
		// last one's client leave yet.
		"NOTIFY_MAX_STREAMS_PER_USER": "1000",
	})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	plan := newLivedPlan(sizes, cfg.LivedDense)
	seeder := newLivedSeeder(e.admin, plan, sizes[len(sizes)-1], prog)
	res := &LivedResult{Users: livedUsers, Roles: livedRoles, Reps: cfg.LivedReps}
	prev := int64(0)
	for _, n := range sizes {
		// A running node's feed would read every seeded row to fan it out;
		// started again, it begins at the new head, as after a deployment.
		if err := e.nodes[0].Stop(15 * time.Second); err != nil {
			return res, err
		}
		seed, err := seeder.grow(ctx, prev, n)
		res.SeedSeconds += seed.InsertSeconds + seed.VacuumSeconds
		if err != nil {
			return res, err
		}
		prog.Printf("lived: %s rows: %s added in %.1f s (%s rows/s), vacuum and analyze %.1f s; notifications %.0f MiB with indexes",
			num(float64(n)), num(float64(seed.Added)), seed.InsertSeconds, num(seed.RowsPerSecond), seed.VacuumSeconds, mib(seed.NotificationsBytes))
		if e.nodes[0], err = cluster.StartNode(ctx, e.nodeConfig(0)); err != nil {
			return res, err
		}
		size, err := measureLived(ctx, cfg, e, plan, seed, rep)
		if size != nil {
			res.Sizes = append(res.Sizes, *size)
		}
		if err != nil {
			return res, fmt.Errorf("at %d rows: %w", n, err)
		}
		prev = n
	}
	res.checkLivedTargets()
	if res.ExplainFile, err = writeLivedPlans(res); err != nil {
		return res, err
	}
	prog.Printf("lived: plans written to %s", res.ExplainFile)
	return res, nil
}

// measureLived times every operation at the size just seeded, then
// explains the statements behind them.
func measureLived(ctx context.Context, cfg config, e *nodeEnv, plan *livedPlan, seed LivedSeed, rep *Report) (*LivedSize, error) {
	n := seed.Rows
	sp, de := livedSparseUser(n), livedDenseUser(n)
	spAud, deAud := plan.audience(sp, n), plan.audience(de, n)
	if len(spAud) != livedSparseTotal || len(deAud) <= livedResumeBehind {
		return nil, fmt.Errorf("plan: sparse user has %d notifications, dense %d", len(spAud), len(deAud))
	}
	upTo, read, unread := livedReadState(deAud)
	from := deAud[len(deAud)-livedResumeBehind-1]
	size := &LivedSize{Rows: n, Seed: seed,
		Sparse: LivedUser{UserID: sp.UserID, Roles: sp.Roles, Notifications: len(spAud)},
		Dense: LivedUser{UserID: de.UserID, Roles: de.Roles, Notifications: len(deAud), ResumeFrom: from,
			ReadUpTo: upTo, ReadMarks: len(read) + len(unread)}}
	spTok, err := e.run.token(sp.UserID, sp.Roles)
	if err != nil {
		return nil, err
	}
	deTok, err := e.run.token(de.UserID, de.Roles)
	if err != nil {
		return nil, err
	}
	spc := livedClient{http: e.http, base: e.nodes[0].URL(), token: spTok}
	dec := livedClient{http: e.http, base: e.nodes[0].URL(), token: deTok}
	ops := []livedOp{
		{Key: "open_sparse", run: func(ctx context.Context) error { return spc.open(ctx, livedSparseTotal, false) }},
		{Key: "open_dense", run: func(ctx context.Context) error { return dec.open(ctx, 0, true) }},
		{Key: "resume_sparse", run: func(ctx context.Context) error { return spc.resume(ctx, 0, spAud) }},
		{Key: "resume_dense", run: func(ctx context.Context) error { return dec.resume(ctx, from, deAud[len(deAud)-livedResumeBehind:]) }},
		{Key: "unread_sparse", run: func(ctx context.Context) error { return spc.unread(ctx, livedSparseTotal, false) }},
		{Key: "unread_dense", run: func(ctx context.Context) error { return dec.unread(ctx, 0, true) }},
		{Key: "history_sparse", run: func(ctx context.Context) error { return spc.history(ctx, newest(spAud, 20)) }},
		{Key: "history_dense", run: func(ctx context.Context) error { return dec.history(ctx, newest(deAud, 20)) }},
	}
	for i := range ops {
		ops[i].Label = livedLabel(ops[i].Key)
	}
	samp := startSampler(ctx, e.admin, 100*time.Millisecond)
	times, err := timeOps(ctx, ops, livedWarmup, cfg.LivedReps)
	rep.Profiles = append(rep.Profiles, samp.Stop("lived "+num(float64(n))))
	if err != nil {
		return size, err
	}
	size.Ops = map[string]stats.Summary{}
	for k, v := range times {
		size.Ops[k] = stats.Summarize(v)
	}
	size.Explains = map[string][]LivedPlan{}
	for _, u := range []struct {
		name  string
		id    notify.Identity
		after int64
	}{{"sparse", sp, 0}, {"dense", de, from}} {
		if err := explainUser(ctx, e, u.id, u.after, size.Explains, func(stmt string) string { return u.name + " " + stmt }); err != nil {
			return size, err
		}
	}
	return size, nil
}

// newest is the last k of seqs, newest first.
func newest(seqs []int64, k int) []int64 {
	out := slices.Clone(seqs[max(0, len(seqs)-k):])
	slices.Reverse(out)
	return out
}
