package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
)

// These tests run a private primary with notifyd's schema and a streaming
// standby of it (pg_basebackup), and read replays and history pages through
// postgres.Replica while the standby is caught up, lags (its replay paused
// with pg_wal_replay_pause()), is down, or was promoted. Whatever the
// standby does, a read returns every row the primary had at its fence.

// readLog records what Replica tells its observer.
type readLog struct {
	mu    sync.Mutex
	reads []string
}

func (l *readLog) observe(read, source, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads = append(l.reads, read+" "+source+" "+reason)
}

// take returns the reads recorded since the last take.
func (l *readLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reads
	l.reads = nil
	return out
}

// replicaEnv is a primary and its standby.
type replicaEnv struct {
	primary, standby *localdb.Cluster
	pool             *pgxpool.Pool // notifyd's, on the primary
	standbyConn      *pgx.Conn     // the superuser's, on the standby's copy of the database
	last             int64         // the last seq published
	reads            readLog
}

// newReplicaEnv starts a primary with 20 published broadcasts and a
// standby that has replayed them.
func newReplicaEnv(t *testing.T, ctx context.Context) *replicaEnv {
	t.Helper()
	e := &replicaEnv{primary: startPrivateCluster(t, "primary")}
	var logs bytes.Buffer
	e.pool = notifydPool(t, ctx, createDatabase(t, ctx, e.primary, "notify"), &logs)
	e.last = publishN(t, ctx, e.pool, 20, "before the standby")
	if _, err := e.pool.Exec(ctx, `CREATE TABLE public.marker (n int)`); err != nil {
		t.Fatal(err)
	}
	// Nothing but the test takes transaction ids (see the nudge's test).
	admin := connect(t, ctx, e.primary.URL("postgres"))
	if _, err := admin.Exec(ctx, `ALTER SYSTEM SET autovacuum = off`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	standby, err := localdb.StartStandby(ctx, e.primary, localdb.ClusterOptions{DataDir: clusterDir(t, "standby"), Fast: true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop(context.Background()) })
	e.standby = standby
	e.standbyConn = connect(t, ctx, standby.URL("notify"))
	e.waitReplayed(t, ctx)
	return e
}

// open returns a Replica over the standby that waits up to wait.
func (e *replicaEnv) open(t *testing.T, ctx context.Context, db string, wait time.Duration) *postgres.Replica {
	t.Helper()
	r, err := postgres.OpenReplica(ctx, e.standby.URL(db), e.pool,
		postgres.PoolConfig{MaxConns: 4, ApplicationName: "notifyd-replica-test"},
		postgres.ReplicaConfig{Wait: wait, Observe: e.reads.observe, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// publish publishes n more broadcasts on the primary.
func (e *replicaEnv) publish(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	e.last = publishN(t, ctx, e.pool, n, fmt.Sprintf("after %d", e.last))
}

// waitReplayed waits until the standby shows the last seq published.
func (e *replicaEnv) waitReplayed(t *testing.T, ctx context.Context) {
	t.Helper()
	testkit.Eventually(t, time.Minute, fmt.Sprintf("the standby to replay seq %d", e.last), func() bool {
		var last int64
		err := e.standbyConn.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM notify.notifications`).Scan(&last)
		return err == nil && last == e.last
	})
}

// passFence writes on the primary after fence was read and waits until the
// standby shows the write: it has replayed past the fence.
func (e *replicaEnv) passFence(t *testing.T, ctx context.Context) {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(ctx, `INSERT INTO public.marker SELECT COALESCE(max(n), 0) + 1 FROM public.marker RETURNING n`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "the standby to replay past the fence", func() bool {
		var seen int
		err := e.standbyConn.QueryRow(ctx, `SELECT COALESCE(max(n), 0) FROM public.marker`).Scan(&seen)
		return err == nil && seen == n
	})
}

// pauseReplay stops the standby's replay until resumeReplay (or t's end).
func (e *replicaEnv) pauseReplay(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := e.standbyConn.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "replay to pause", func() bool {
		var state string
		err := e.standbyConn.QueryRow(ctx, `SELECT pg_get_wal_replay_pause_state()`).Scan(&state)
		return err == nil && state == "paused"
	})
}

func (e *replicaEnv) resumeReplay(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := e.standbyConn.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
}

// replayAll replays everything after seq 0 for alice as of the stream
// head read now (its fence) and returns the seqs.
func replayAll(t *testing.T, ctx context.Context, notes *postgres.Notifications) []int64 {
	t.Helper()
	head, err := notes.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return replayAt(t, ctx, notes, head.Fence)
}

func replayAt(t *testing.T, ctx context.Context, notes *postgres.Notifications, fence postgres.Fence) []int64 {
	t.Helper()
	if fence.IsZero() {
		t.Fatal("the stream head came without a fence")
	}
	ns, err := notes.ReplayAt(ctx, fence, notify.Identity{UserID: "alice"}, 0, math.MaxInt64, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]int64, len(ns))
	for i, n := range ns {
		seqs[i] = n.Seq
	}
	return seqs
}

// wantSeqs fails unless seqs are 1 … last, each once, in order.
func wantSeqs(t *testing.T, seqs []int64, last int64) {
	t.Helper()
	for i, s := range seqs {
		if s != int64(i)+1 {
			t.Fatalf("replay %v: want 1 … %d in order, seq %d is at position %d", seqs, last, s, i)
		}
	}
	if int64(len(seqs)) != last {
		t.Fatalf("replay has %d notifications (up to %v), want 1 … %d: rows missing", len(seqs), seqs[len(seqs)-1:], last)
	}
}

// wantReads fails unless the reads recorded are want, one of the
// alternatives given as "a|b" matching each.
func wantReads(t *testing.T, got []string, want ...string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = slices.Contains(strings.Split(want[i], "|"), got[i])
	}
	if !ok {
		t.Fatalf("reads %q, want %q", got, want)
	}
}

func TestReplicaReadsNeverMissRows(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	e := newReplicaEnv(t, ctx)
	r := e.open(t, ctx, "notify", time.Hour) // waits for as long as it takes, unless told otherwise
	notes := postgres.NewNotifications(e.pool).WithReplica(r)
	caughtUp := "replay replica caught_up|replay replica waited"

	t.Run("caught up: the replay comes from the replica", func(t *testing.T) {
		head, err := notes.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The replica stops past the fence; the primary goes on. A replay
		// from the primary would have the 5 new rows, one from the replica
		// only what was there at the fence: every one of those.
		e.passFence(t, ctx)
		e.pauseReplay(t, ctx)
		at := e.last
		e.publish(t, ctx, 5)
		wantSeqs(t, replayAt(t, ctx, notes, head.Fence), at)
		wantReads(t, e.reads.take(), caughtUp)
		e.resumeReplay(t, ctx)
	})

	t.Run("lagging: the read waits for the replica, then reads it", func(t *testing.T) {
		e.pauseReplay(t, ctx)
		e.publish(t, ctx, 5)
		head, err := notes.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []int64, 1)
		go func() {
			ns, err := notes.ReplayAt(ctx, head.Fence, notify.Identity{UserID: "alice"}, 0, math.MaxInt64, 1000)
			if err != nil {
				t.Error(err)
			}
			seqs := []int64{}
			for _, n := range ns {
				seqs = append(seqs, n.Seq)
			}
			got <- seqs
		}()
		// The read has seen the replica behind its fence and waits.
		testkit.Eventually(t, time.Minute, "the read to check the replica", func() bool {
			var n int
			err := e.standbyConn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = 'notifyd-replica-test' AND query LIKE '%pg_last_wal_replay_lsn%notify.histories%'`).Scan(&n)
			return err == nil && n > 0
		})
		e.resumeReplay(t, ctx)
		wantSeqs(t, <-got, e.last)
		wantReads(t, e.reads.take(), "replay replica waited")
	})

	t.Run("lagging past the wait: the read goes to the primary", func(t *testing.T) {
		impatient := postgres.NewNotifications(e.pool).WithReplica(e.open(t, ctx, "notify", time.Millisecond))
		e.pauseReplay(t, ctx)
		e.publish(t, ctx, 5)
		wantSeqs(t, replayAll(t, ctx, impatient), e.last)
		wantReads(t, e.reads.take(), "replay primary lagging")
		e.resumeReplay(t, ctx)
		e.waitReplayed(t, ctx)
	})

	t.Run("history pages show the user's own writes", func(t *testing.T) {
		patient := postgres.NewInbox(e.pool).WithReplica(e.open(t, ctx, "notify", time.Hour))
		impatient := postgres.NewInbox(e.pool).WithReplica(e.open(t, ctx, "notify", time.Millisecond))
		alice := notify.Identity{UserID: "alice"}
		page := func(inbox *postgres.Inbox) []postgres.InboxItem {
			t.Helper()
			items, _, err := inbox.History(ctx, alice, postgres.HistoryQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(items)) != e.last || items[0].Seq != e.last {
				t.Fatalf("history page of %d items from seq %d, want %d from %d", len(items), items[0].Seq, e.last, e.last)
			}
			return items
		}
		first := page(patient)
		wantReads(t, e.reads.take(), "history replica caught_up|history replica waited")
		// Marked read on the primary while the replica does not move: the
		// next page cannot come from it, and shows the mark.
		e.pauseReplay(t, ctx)
		if _, err := postgres.NewInbox(e.pool).SetRead(ctx, alice, first[0].ID, true); err != nil {
			t.Fatal(err)
		}
		if items := page(impatient); !items[0].Read {
			t.Fatalf("seq %d not read in the page read after it was marked read", items[0].Seq)
		}
		wantReads(t, e.reads.take(), "history primary lagging")
		e.resumeReplay(t, ctx)
		if items := page(patient); !items[0].Read {
			t.Fatalf("seq %d not read in the page read from the replica", items[0].Seq)
		}
		wantReads(t, e.reads.take(), "history replica caught_up|history replica waited")
	})

	t.Run("an idle primary's unwritten WAL: the read has it written out", func(t *testing.T) {
		nextXID := func() int64 {
			t.Helper()
			var x int64
			if err := e.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&x); err != nil {
				t.Fatal(err)
			}
			return x
		}
		// PostgreSQL's own background WAL (the running-transactions record
		// the background writer logs every 15 s, which the WAL writer
		// flushes) sometimes writes the open transaction's WAL out before
		// the read looks, on a loaded machine: then the read needs no nudge
		// and the attempt proves nothing, so it is tried again.
		for attempt := 1; ; attempt++ {
			e.waitReplayed(t, ctx)
			// An open transaction's insert: WAL past every commit, which no
			// one writes out while nothing commits.
			open, err := e.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := open.Exec(ctx, `INSERT INTO public.marker VALUES (0)`); err != nil {
				t.Fatal(err)
			}
			before := nextXID()
			wantSeqs(t, replayAll(t, ctx, notes), e.last)
			wantReads(t, e.reads.take(), caughtUp)
			after := nextXID()
			_ = open.Rollback(ctx)
			if after != before {
				break
			}
			if attempt == 3 {
				t.Fatalf("no transaction committed on the primary while the read waited (next xid %d), %d times: the replica reached the fence without it?", after, attempt)
			}
			t.Logf("attempt %d: the WAL was written out before the read needed it; again", attempt)
		}
	})

	t.Run("another database of the cluster is not trusted", func(t *testing.T) {
		createDatabase(t, ctx, e.primary, "other")
		e.publish(t, ctx, 1) // the standby replays the new database
		e.waitReplayed(t, ctx)
		other := postgres.NewNotifications(e.pool).WithReplica(e.open(t, ctx, "other", time.Hour))
		wantSeqs(t, replayAll(t, ctx, other), e.last)
		wantReads(t, e.reads.take(), "replay primary untrusted")
	})

	t.Run("down: reads go to the primary until the probe finds it back", func(t *testing.T) {
		if err := e.standby.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		e.publish(t, ctx, 3)
		wantSeqs(t, replayAll(t, ctx, notes), e.last)
		wantSeqs(t, replayAll(t, ctx, notes), e.last) // no attempt: it is known down
		wantReads(t, e.reads.take(), "replay primary down", "replay primary down")
		if st := r.Status(); st.State != postgres.ReplicaDown {
			t.Fatalf("status %+v, want down", st)
		}
		probes, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); r.Run(probes) }()
		defer func() { stop(); <-done }()
		if err := e.standby.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, time.Minute, "the probe to find the replica back", func() bool { return r.Status().State == postgres.ReplicaUp })
		e.standbyConn = connect(t, ctx, e.standby.URL("notify"))
		wantSeqs(t, replayAll(t, ctx, notes), e.last)
		wantReads(t, e.reads.take(), caughtUp)
	})

	t.Run("promoted: not trusted", func(t *testing.T) {
		if err := e.standby.Promote(ctx); err != nil {
			t.Fatal(err)
		}
		wantSeqs(t, replayAll(t, ctx, notes), e.last)
		wantReads(t, e.reads.take(), "replay primary untrusted")
		if st := r.Status(); st.State != postgres.ReplicaUntrusted || !strings.Contains(st.Detail, "promoted") {
			t.Fatalf("status %+v, want untrusted: promoted", st)
		}
		wantSeqs(t, replayAll(t, ctx, notes), e.last)
		wantReads(t, e.reads.take(), "replay primary untrusted")
	})
}

// A "replica" that is another cluster (here: not even a standby) is never
// read: each of its connections fails the identity check.
func TestReplicaOfAnotherClusterIsNotTrusted(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	primary, stranger := startPrivateCluster(t, "primary"), startPrivateCluster(t, "stranger")
	var logs bytes.Buffer
	pool := notifydPool(t, ctx, createDatabase(t, ctx, primary, "notify"), &logs)
	last := publishN(t, ctx, pool, 7, "on the primary")
	strangerPool := notifydPool(t, ctx, createDatabase(t, ctx, stranger, "notify"), &logs)
	publishN(t, ctx, strangerPool, 30, "elsewhere") // more than the primary: its LSN is no guide either
	var reads readLog
	r, err := postgres.OpenReplica(ctx, stranger.URL("notify"), pool, postgres.PoolConfig{MaxConns: 2},
		postgres.ReplicaConfig{Wait: time.Hour, Observe: reads.observe})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Status(); st.State != postgres.ReplicaUntrusted || !strings.Contains(st.Detail, "another cluster") {
		t.Fatalf("status %+v, want untrusted: another cluster", st)
	}
	wantSeqs(t, replayAll(t, ctx, postgres.NewNotifications(pool).WithReplica(r)), last)
	wantReads(t, reads.take(), "replay primary untrusted")
}
