package cluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// TestNodeKilledUnderLoad: three node processes on one database, streams
// spread over them, every node's worker competing for the queue, producers
// inserting over SQL and posting over HTTP to every node, streams resuming
// at random on other nodes, and one node killed with SIGKILL halfway. Its
// clients resume on the others, and every stream receives exactly the
// notifications targeted to it since it first connected: none missing,
// none twice, in order, nothing foreign.
func TestNodeKilledUnderLoad(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	nodeLeavesUnderLoad(t, false)
}

// TestNodeStoppedUnderLoad: the same, but the node is stopped with SIGTERM:
// it exits cleanly, leaves no claim of its own in processing, and its
// clients resume elsewhere with nothing lost.
func TestNodeStoppedUnderLoad(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	nodeLeavesUnderLoad(t, true)
}

func nodeLeavesUnderLoad(t *testing.T, graceful bool) {
	f := setup(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	pop := cluster.NewPopulation(rnd, "u", 12, 4, 2)
	mix := cluster.Mix{Role: 0.2, UserOrRole: 0.1, Everyone: 0.05}
	nodes := cluster.NewNodes(f.urls())

	// Three streams per user, on three different nodes, all starting at
	// seq 0 (nothing is published yet) so what each must get is exact.
	all, stopReaders := startStreams(ctx)
	defer stopReaders()
	for i, u := range pop.Users {
		tok := f.env.Token(u.UserID, u.Roles...)
		for k := range 3 {
			all.add(u, cluster.ReaderConfig{Client: f.client, Nodes: nodes, Token: tok, Node: (i + k) % 3, Start: 0})
		}
	}
	readers, ids := all.readers, all.ids
	for _, r := range readers {
		select {
		case <-r.Connected():
		case <-ctx.Done():
			t.Fatal("streams did not connect")
		}
	}

	// Load: SQL batches and HTTP posts, random resumes, one node killed.
	admin := f.env.Token("publisher", "ADMIN")
	lctx, stopLoad := context.WithCancel(ctx)
	var lwg sync.WaitGroup
	var sqlSent, httpSent, httpRetries, resumes atomic.Int64
	var loadErr atomic.Pointer[error]
	fail := func(err error) { loadErr.CompareAndSwap(nil, &err) }
	lwg.Add(1)
	go func() { // ~200/s in batches of 4
		defer lwg.Done()
		r := rand.New(rand.NewPCG(seed, 2))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for lctx.Err() == nil {
			targets := make([]notify.Target, 4)
			for i := range targets {
				targets[i] = pop.Target(r, mix)
			}
			if got, err := cluster.Insert(lctx, f.env.DB.Pool, targets, "sql", ""); err == nil {
				sqlSent.Add(int64(len(got)))
			} else if lctx.Err() == nil {
				fail(err)
			}
			select {
			case <-lctx.Done():
			case <-tick.C:
			}
		}
	}()
	for p := range 2 {
		lwg.Add(1)
		go func() { // ~2 x 20/s, to a random node that is up
			defer lwg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(10+p)))
			for i := 0; lctx.Err() == nil; i++ {
				key := fmt.Sprintf("post-%d-%d", p, i)
				target := pop.Target(r, mix)
				for attempt := 0; ; attempt++ {
					_, err := cluster.Post(lctx, f.client, nodes.URL(nodes.Pick(-1)), admin, target, "http", key)
					if err == nil {
						httpSent.Add(1)
						break
					}
					if lctx.Err() != nil {
						return
					}
					if attempt == 20 {
						fail(err)
						return
					}
					httpRetries.Add(1) // the node died mid-request: same key, another node
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	lwg.Add(1)
	go func() { // a random stream resumes elsewhere every 40 ms
		defer lwg.Done()
		r := rand.New(rand.NewPCG(seed, 3))
		for lctx.Err() == nil {
			time.Sleep(40 * time.Millisecond)
			readers[r.IntN(len(readers))].Resume(-1)
			resumes.Add(1)
		}
	}()

	const victim = 1
	time.Sleep(3 * time.Second)
	onVictim := 0
	for _, r := range readers {
		if r.Stats().Node == victim {
			onVictim++
		}
	}
	published := perNodePublished(ctx, t, f)
	if graceful {
		pid := f.nodes[victim].PID()
		if err := f.nodes[victim].Stop(15 * time.Second); err != nil {
			t.Fatalf("SIGTERM: the node did not exit cleanly: %v", err)
		}
		var held int
		if err := f.env.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM notify.queue_items
			WHERE status = 'processing' AND locked_by LIKE '%/' || $1::text || '/%'`, strconv.Itoa(pid)).Scan(&held); err != nil || held != 0 {
			t.Errorf("the stopped node left %d items in processing (%v)", held, err)
		}
	} else if err := f.nodes[victim].Kill(); err != nil {
		t.Fatal(err)
	}
	nodes.SetDown(victim, true)
	t.Logf("stopped node%d (graceful %v) with %d of %d streams on it; published so far per node: %v", victim, graceful, onVictim, len(readers), published)
	time.Sleep(3 * time.Second)
	stopLoad()
	lwg.Wait()
	if p := loadErr.Load(); p != nil {
		t.Fatalf("load: %v", *p)
	}

	// Drain, then a last broadcast that every stream must reach.
	if err := cluster.WaitDrained(ctx, f.env.DB.Pool, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	sentinel, err := cluster.PublishSentinel(ctx, f.env.DB.Pool, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.WaitFor(ctx, readers, sentinel, 30*time.Second); err != nil {
		t.Error(err)
	}
	feed, err := cluster.LoadFeed(ctx, f.env.DB.Pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	var total cluster.Check
	onDead, drops := 0, 0
	for i, r := range readers {
		seqs, _ := r.Received()
		total.Add(feed.Check(fmt.Sprintf("stream %d (%s)", i, ids[i].UserID), ids[i], 0, seqs))
		st := r.Stats()
		drops += st.Drops
		if st.Node == victim {
			onDead++
		}
		if st.ProtocolErrors > 0 {
			t.Errorf("stream %d: %d malformed events, first: %s", i, st.ProtocolErrors, st.FirstError)
		}
	}
	t.Logf("sent %d over SQL, %d over HTTP (%d retried after a failure), %d published; %d random resumes, %d connections lost with the node",
		sqlSent.Load(), httpSent.Load(), httpRetries.Load(), feed.Len(), resumes.Load(), drops)
	t.Logf("exactly-once: %s", total)
	if !total.OK() {
		t.Errorf("exactly-once violated: %s\n%v", total, total.Examples)
	}
	if onDead > 0 {
		t.Errorf("%d streams still count the killed node as theirs", onDead)
	}
	if total.Received == 0 || feed.Len() < int(sqlSent.Load()+httpSent.Load()) {
		t.Errorf("published %d, fewer than the %d sent", feed.Len(), sqlSent.Load()+httpSent.Load())
	}
	var stuck int
	if err := f.env.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM notify.queue_items WHERE status <> 'sent'`).Scan(&stuck); err != nil || stuck != 0 {
		t.Errorf("%d queue items not sent (%v)", stuck, err)
	}
	published = perNodePublished(ctx, t, f)
	t.Logf("published by each surviving node's worker (the killed one's count died with it): %v", published)
	workers := 0
	for i, n := range published {
		if i != victim && n > 0 {
			workers++
		}
	}
	if workers == 0 {
		t.Error("no surviving node published anything")
	}
}

// perNodePublished reads notifyd_notifications_published_total from each
// live node (-1 for a dead one).
func perNodePublished(ctx context.Context, t *testing.T, f *fixture) []float64 {
	t.Helper()
	out := make([]float64, len(f.nodes))
	for i, n := range f.nodes {
		select {
		case <-n.Done():
			out[i] = -1
			continue
		default:
		}
		v, err := n.Metric(ctx, "notifyd_notifications_published_total")
		if err != nil {
			t.Errorf("node%d metrics: %v", i, err)
		}
		out[i] = v
	}
	return out
}
