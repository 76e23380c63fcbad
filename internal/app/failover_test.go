package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// startStandbyOnPort starts a streaming replica of primary on port, in a
// directory of the test's own.
func startStandbyOnPort(t *testing.T, primary *localdb.Cluster, port int) *localdb.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := localdb.StartStandby(ctx, primary, localdb.ClusterOptions{DataDir: clusterDataDir(t, "notifyd-standby-"), Port: port, Fast: true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("start a streaming replica: %v", err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// collector keeps every message of a stream, in arrival order.
type collector struct {
	r    *apptest.Reader
	user string
	mu   sync.Mutex
	msgs []apptest.Message
	done chan struct{}
}

func collect(r *apptest.Reader, user string) *collector {
	c := &collector{r: r, user: user, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			m, ok := r.Next(time.Hour)
			if !ok {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) messages() []apptest.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// lastSeq is the seq of the last notification received (0 if none).
func (c *collector) lastSeq() int64 {
	msgs := c.messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Type == "notification" {
			return msgs[i].Notification().Seq
		}
	}
	return 0
}

// has reports whether a notification with this message text was received.
func (c *collector) has(text string) bool {
	for _, m := range c.messages() {
		if m.Type == "notification" && m.Notification().Message == text {
			return true
		}
	}
	return false
}

// survivor is a notification the promoted replica has.
type survivor struct {
	seq    int64
	text   string
	target *string
}

func (s survivor) visibleTo(user string) bool { return s.target == nil || *s.target == user }

// TestFailoverByConnectionString: two nodes whose DATABASE_URL names a
// primary and its streaming replica (target_session_attrs=read-write). Under
// load, the replica falls behind, the primary commits and publishes more
// (which clients see), and is SIGKILLed; the replica is promoted. The
// nodes' pools, listeners and feeds follow it by themselves; every stream
// ends with every notification the promoted replica has, exactly once, in
// seq order; the ones it lost were delivered before the failover and the
// streams that got them are told (a status "lost" naming the hole); a
// client resuming from a lost seq is told too, then gets everything after;
// every queue item ends sent.
func TestFailoverByConnectionString(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	primary := privateCluster(t)
	env := apptest.NewEnv(t)
	// The nodes migrate the primary, then the replica copies it, on a port
	// chosen now for the nodes' connection string.
	standbyPort := testkit.FreePort(t)
	multi := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/notify?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.Port(), standbyPort)
	cfg := env.Config()
	cfg.DatabaseURL = multi
	cfg.Worker.Lease = 2 * time.Second
	nodes := []string{env.Start(cfg).URL(), env.Start(cfg).URL()}
	for _, n := range nodes {
		waitReady(t, n, http.StatusOK, 20*time.Second)
	}
	standby := startStandbyOnPort(t, primary, standbyPort)

	users := []string{"u0", "u1", "u2"}
	var live []*collector
	for i, u := range users {
		for j := range nodes {
			r := apptest.Open(t, nodes[(i+j)%len(nodes)], env.Token(u), "")
			if _, ok := r.NextOfType("connected", 10*time.Second); !ok {
				t.Fatalf("%s's stream on node %d did not connect", u, j)
			}
			live = append(live, collect(r, u))
		}
	}
	resumer := apptest.Open(t, nodes[1], env.Token("u0"), "")
	if _, ok := resumer.NextOfType("connected", 10*time.Second); !ok {
		t.Fatal("the resuming client's first stream did not connect")
	}
	resumed := collect(resumer, "u0")

	// One producer, through the same multi-host URL, a notification every
	// few milliseconds: to a user in turn, every fourth one to everybody.
	producer, err := pgxpool.New(ctx, multi)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var mu sync.Mutex
	var committed []string
	addressedTo := map[string]*string{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			text := fmt.Sprintf("n%05d", i)
			var target *string
			if i%4 != 3 {
				target = &users[i%len(users)]
			}
			// Every attempt is addressed: an insert whose commit was
			// acknowledged by nobody (the primary died in between) may
			// still have been committed and delivered.
			mu.Lock()
			addressedTo[text] = target
			mu.Unlock()
			if _, err := producer.Exec(loadCtx, `INSERT INTO notify.notifications (target_user_id, message) VALUES ($1, $2)`, target, text); err == nil {
				mu.Lock()
				committed = append(committed, text)
				mu.Unlock()
			}
			time.Sleep(4 * time.Millisecond)
		}
	})
	defer func() { stopLoad(); wg.Wait() }()
	committedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(committed) }
	lastCommitted := func() string { mu.Lock(); defer mu.Unlock(); return committed[len(committed)-1] }
	testkit.Eventually(t, 30*time.Second, "100 notifications committed", func() bool { return committedCount() >= 100 })

	// Everything committed so far reaches the replica; then it falls
	// behind (here: it stops). The private clusters run with
	// synchronous_commit off, so a commit is acknowledged once its record
	// is inserted, before it is written out: the insert position, not the
	// write position (pg_current_wal_lsn), is past every commit so far.
	mu.Lock()
	replicated := slices.Clone(committed)
	mu.Unlock()
	admin, err := pgxpool.New(ctx, primary.URL("notify"))
	if err != nil {
		t.Fatal(err)
	}
	var lsn string
	if err := admin.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	replica, err := pgxpool.New(ctx, standby.URL("notify"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "the replica to replay the first notifications", func() bool {
		var caught bool
		err := replica.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&caught)
		return err == nil && caught
	})
	replica.Close()
	if err := standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// The primary goes on alone: what it commits now, clients see, and
	// the replica never gets.
	before := committedCount()
	testkit.Eventually(t, 30*time.Second, "100 more notifications on the primary alone", func() bool { return committedCount() >= before+100 })
	lostText := lastCommitted()
	testkit.Eventually(t, 30*time.Second, "a notification the replica never got to reach its streams", func() bool {
		for _, c := range live {
			if c.has(lostText) {
				return true
			}
		}
		return false
	})
	resumer.Close()
	<-resumed.done
	resumeFrom := resumed.lastSeq()

	// The primary dies; the replica is promoted.
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promotedAt := committedCount()
	testkit.Eventually(t, time.Minute, "100 notifications on the promoted replica", func() bool { return committedCount() >= promotedAt+100 })
	stopLoad()
	wg.Wait()
	mu.Lock()
	afterPromotion := slices.Clone(committed[promotedAt:])
	mu.Unlock()

	// The client that was away comes back, to the other node.
	again := collect(apptest.Open(t, nodes[0], env.Token("u0"), fmt.Sprint(resumeFrom)), "u0")

	// What survived: every queue item ends sent, on the promoted replica.
	db, err := pgxpool.New(ctx, standby.URL("notify"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testkit.Eventually(t, time.Minute, "every queue item sent on the promoted replica", func() bool {
		var pending int
		err := db.QueryRow(ctx, `SELECT count(*) FROM notify.queue_items WHERE status <> 'sent'`).Scan(&pending)
		return err == nil && pending == 0
	})
	var holeAfter, holeFirst int64
	if err := db.QueryRow(ctx, `SELECT resumed_after, first_seq FROM notify.histories ORDER BY id DESC LIMIT 1`).Scan(&holeAfter, &holeFirst); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `SELECT seq, message, target_user_id FROM notify.notifications WHERE seq IS NOT NULL ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var survivors []survivor
	kept := map[string]bool{}
	for rows.Next() {
		var s survivor
		if err := rows.Scan(&s.seq, &s.text, &s.target); err != nil {
			t.Fatal(err)
		}
		survivors = append(survivors, s)
		kept[s.text] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d committed, %d survived; the new history starts at %d after %d; the client resumes from %d",
		committedCount(), len(survivors), holeFirst, holeAfter, resumeFrom)
	for _, text := range append(replicated, afterPromotion...) {
		if !kept[text] {
			t.Errorf("%s was committed on the replica (or before it fell behind) but is not there", text)
		}
	}
	if kept[lostText] {
		t.Fatalf("%s, committed while the replica was down, survived: the failover lost nothing, the test proves nothing", lostText)
	}

	// Every stream: every survivor it may see, exactly once, in seq order;
	// anything else it got was numbered on the lost history, and it was told.
	check := func(name string, c *collector, after int64) {
		t.Helper()
		var want []survivor
		for _, s := range survivors {
			if s.seq > after && s.visibleTo(c.user) {
				want = append(want, s)
			}
		}
		got := map[int64]int{}
		testkit.Eventually(t, time.Minute, name+" to receive every survivor", func() bool {
			clear(got)
			for _, m := range c.messages() {
				if m.Type == "notification" {
					got[m.Notification().Seq]++
				}
			}
			for _, s := range want {
				if got[s.seq] == 0 {
					return false
				}
			}
			return true
		})
		surviving := map[int64]survivor{}
		for _, s := range survivors {
			surviving[s.seq] = s
		}
		var prev int64
		toldLost := false
		for _, m := range c.messages() {
			switch m.Type {
			case "status":
				var d struct {
					Replay  string `json:"replay"`
					LastSeq int64  `json:"lastSeq"`
					NextSeq int64  `json:"nextSeq"`
				}
				_ = json.Unmarshal(m.Data, &d)
				if d.Replay == "lost" {
					if d.LastSeq != holeAfter || d.NextSeq != holeFirst {
						t.Errorf("%s: told lost (%d, %d), want (%d, %d)", name, d.LastSeq, d.NextSeq, holeAfter, holeFirst)
					}
					toldLost = true
				}
			case "notification":
				n := m.Notification()
				if n.Seq <= prev {
					t.Errorf("%s: seq %d after %d", name, n.Seq, prev)
				}
				prev = n.Seq
				if s, ok := surviving[n.Seq]; ok {
					if s.text != n.Message {
						t.Errorf("%s: seq %d is %q, the database has %q", name, n.Seq, n.Message, s.text)
					}
					if !s.visibleTo(c.user) {
						t.Errorf("%s: received %s, not addressed to %s", name, n.Message, c.user)
					}
					if got[n.Seq] != 1 {
						t.Errorf("%s: seq %d received %d times", name, n.Seq, got[n.Seq])
					}
					if n.Seq >= holeFirst && !toldLost && lostBefore(c.messages(), holeAfter, holeFirst, n.Seq) {
						t.Errorf("%s: seq %d of the new history arrived after notifications of the lost one with no word about it", name, n.Seq)
					}
					continue
				}
				// Not on the promoted replica: it must have been numbered
				// on the lost history, to this user, by the producer.
				if n.Seq <= holeAfter || n.Seq >= holeFirst {
					t.Errorf("%s: seq %d (%s) is not on the promoted replica and not in its hole (%d, %d)", name, n.Seq, n.Message, holeAfter, holeFirst)
				}
				mu.Lock()
				target, ok := addressedTo[n.Message]
				mu.Unlock()
				if !ok || (target != nil && *target != c.user) {
					t.Errorf("%s: received %s, which nobody sent to %s", name, n.Message, c.user)
				}
			}
		}
	}
	for i, c := range live {
		check(fmt.Sprintf("live stream %d (%s)", i, c.user), c, 0)
	}
	after := resumeFrom
	resumedInHole := resumeFrom > holeAfter && resumeFrom < holeFirst
	if resumedInHole {
		after = holeAfter
	} else {
		t.Logf("the resuming client had seen nothing of the lost history (%d)", resumeFrom)
	}
	check("the resumed stream", again, after) // waits for its replay, which the status leads
	if resumedInHole {
		if msgs := again.messages(); !slices.ContainsFunc(msgs, func(m apptest.Message) bool { return m.Type == "status" && statusReplay(m) == "lost" }) {
			t.Errorf("the client resuming from %d (lost with the primary) was not told", resumeFrom)
		}
	}
	for _, c := range live {
		if slices.ContainsFunc(c.messages(), func(m apptest.Message) bool {
			return m.Type == "notification" && !kept[m.Notification().Message] && m.Notification().Seq > holeAfter && m.Notification().Seq < holeFirst
		}) && !slices.ContainsFunc(c.messages(), func(m apptest.Message) bool { return m.Type == "status" && statusReplay(m) == "lost" }) {
			t.Errorf("a live stream of %s received notifications the failover lost and was never told", c.user)
		}
	}
}

// lostBefore reports whether msgs hold a notification numbered in the hole
// before the one with seq.
func lostBefore(msgs []apptest.Message, after, first, seq int64) bool {
	for _, m := range msgs {
		if m.Type != "notification" {
			continue
		}
		s := m.Notification().Seq
		if s == seq {
			return false
		}
		if s > after && s < first {
			return true
		}
	}
	return false
}

// statusReplay is a status message's replay field ("" for others).
func statusReplay(m apptest.Message) string {
	var d struct {
		Replay string `json:"replay"`
	}
	_ = json.Unmarshal(m.Data, &d)
	return d.Replay
}
