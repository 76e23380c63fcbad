package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
)

// What the storm and the rolling restart share: nodes on a database that
// may hold a seeded history, and a population whose users and roles are the
// seed's, so that with a seeded table every stream's opening reads a user
// who has history, as on a database that has been in use.

// startReconnectNodes starts n nodes that keep any history (the seed goes
// back 30 days) and let every stream end up on one node, and seeds rows
// published notifications when rows > 0.
func (nr *nodeRun) startReconnectNodes(ctx context.Context, n, streams int, rows int64, prog *progress) (*nodeEnv, *LivedSeed, error) {
	e, err := nr.startNodes(ctx, n, map[string]string{
		"NOTIFY_MAX_STREAMS": strconv.Itoa(streams + 1000),
		"NOTIFY_RETENTION":   "8760h",
	})
	if err != nil {
		return nil, nil, err
	}
	if rows == 0 {
		return e, nil, nil
	}
	seed, err := e.seedHistory(ctx, rows, nr.cfg.LivedDense, prog)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return e, &seed, nil
}

// seedHistory stops the nodes, writes n published notifications with the
// lived phase's seed (lived_seed.go: 70% to one of users u0 … u99999, 30% to
// one or two of roles r0 … r199), and starts the nodes again on their
// addresses. A running node's feed would read every seeded row to fan it
// out; started again, each begins at the new head, as after a deployment.
func (e *nodeEnv) seedHistory(ctx context.Context, n int64, dense int, prog *progress) (LivedSeed, error) {
	if err := e.eachNode(func(i int) error { return e.nodes[i].Stop(15 * time.Second) }); err != nil {
		return LivedSeed{}, err
	}
	seeder := newLivedSeeder(e.admin, newLivedPlan([]int64{n}, dense), n, prog)
	seed, err := seeder.grow(ctx, 0, n)
	if err != nil {
		return seed, err
	}
	prog.Printf("seeded %s published notifications in %.1f s (%s rows/s), vacuum and analyze %.1f s; notifications %.0f MiB with indexes",
		num(float64(n)), seed.InsertSeconds, num(seed.RowsPerSecond), seed.VacuumSeconds, mib(seed.NotificationsBytes))
	return seed, e.eachNode(func(i int) error { return e.restartNode(ctx, i) })
}

// eachNode runs fn for every node at once.
func (e *nodeEnv) eachNode(fn func(i int) error) error {
	errs := make([]error, len(e.nodes))
	var wg sync.WaitGroup
	for i := range e.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// livedPopulation is users u0 … u<users-1>, user k holding the one role
// r<k mod roles>: the seed's own users and roles (below 100,000 and 200).
func livedPopulation(users, roles int) cluster.Population {
	p := cluster.Population{Roles: make([]string, roles), Users: make([]notify.Identity, users)}
	for i := range roles {
		p.Roles[i] = "r" + strconv.Itoa(i)
	}
	for k := range users {
		p.Users[k] = notify.Identity{UserID: "u" + strconv.Itoa(k), Roles: []string{p.Roles[k%roles]}}
	}
	return p
}

// withRate is cfg with the load generator's rate and mix set for a phase.
func (c config) withRate(rate float64, mix cluster.Mix) config {
	c.Rate, c.Mix = rate, mix
	return c
}

// publishTimes reads when each notification after start was created (the
// producer's transaction) and published (the worker's), by seq.
func publishTimes(ctx context.Context, e *nodeEnv, start int64) (map[int64][2]int64, error) {
	rows, err := e.admin.Query(ctx, `SELECT seq, created_at, published_at FROM notify.notifications WHERE seq > $1`, start)
	if err != nil {
		return nil, fmt.Errorf("read publish times: %w", err)
	}
	defer rows.Close()
	out := map[int64][2]int64{}
	for rows.Next() {
		var seq int64
		var created, published time.Time
		if err := rows.Scan(&seq, &created, &published); err != nil {
			return nil, fmt.Errorf("read publish times: %w", err)
		}
		out[seq] = [2]int64{created.UnixNano(), published.UnixNano()}
	}
	return out, rows.Err()
}

// openWithLoad opens l's streams, each reconnecting as the browser client
// does, and makes a load generator at rate with mix over pop; the caller
// closes both.
func (nr *nodeRun) openWithLoad(ctx context.Context, e *nodeEnv, l *layout, pop cluster.Population, rate float64, mix cluster.Mix,
	phase string, prog *progress, stderr io.Writer) (cs *fleet.Fleet, g *loadGen, opened int, openSecs float64, err error) {
	l.browser(nr.cfg.Browser)
	if cs, opened, openSecs, err = l.open(ctx, prog, phase, stderr); err != nil {
		return nil, nil, 0, 0, err
	}
	admin, err := nr.token("bench-admin", []string{"ADMIN"})
	if err == nil {
		g, err = newLoadGen(ctx, nr.cfg.withRate(rate, mix), e, pop, admin)
	}
	if err != nil {
		cs.Close()
		return nil, nil, 0, 0, err
	}
	return cs, g, opened, openSecs, nil
}

// finish ends a run whose load has stopped (loadErr: how it ended): it
// drains it, records the run's figures, and checks every stream against
// the database.
func (r *ReconnectRun) finish(ctx context.Context, cfg config, e *nodeEnv, cs *fleet.Fleet, g *loadGen, l *layout, start int64,
	ld *loadRun, loadErr error) (*checkedStreams, error) {
	r.Seconds, r.DrainSeconds, r.LoadEnd, loadErr = ld.drain(ctx, cfg, e, cs, loadErr)
	r.Sent = g.sent()
	r.AchievedRate = float64(r.Sent) / r.Seconds
	if loadErr != nil {
		return nil, loadErr
	}
	cd, err := checkStreams(ctx, e, cs, l, start, &r.StreamTally)
	r.Deliveries = r.Check.Received
	return cd, err
}

// killNode SIGKILLs node i and takes it out of the producers' and the
// clients' rotation (setDown); beforeKill runs just before the signal. It
// returns the streams the node held and when it was killed.
func (e *nodeEnv) killNode(ctx context.Context, cs *fleet.Fleet, i int, phase string, prog *progress, beforeKill func()) (int, time.Time, error) {
	on, _ := e.nodes[i].Metric(ctx, "notifyd_streams_open")
	beforeKill()
	at := time.Now()
	err := e.nodes[i].Kill()
	_ = e.setDown(cs, i, true)
	prog.Printf("%s: killed node%d (SIGKILL) holding %d streams", phase, i, int(on))
	return int(on), at, err
}

// setDown takes node i out of rotation (or puts it back) for the
// producers and for cs's clients.
func (e *nodeEnv) setDown(cs *fleet.Fleet, i int, down bool) error {
	e.set.SetDown(i, down)
	return cs.SetNodeDown(i, down)
}
