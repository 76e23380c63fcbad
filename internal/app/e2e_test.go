package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestTargeting pins guarantee 3: user, role, both, and everyone, with no leak.
func TestTargeting(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	alice := apptest.Open(t, srv.URL(), env.Token("alice", "USER"), "")
	bob := apptest.Open(t, srv.URL(), env.Token("bob", "ADMIN"), "")
	carol := apptest.Open(t, srv.URL(), env.Token("carol", "SALES", "USER"), "")
	dave := apptest.Open(t, srv.URL(), env.Token("dave"), "")
	for _, r := range []*apptest.Reader{alice, bob, carol, dave} {
		if _, ok := r.NextOfType("connected", 5*time.Second); !ok {
			t.Fatal("no connected message")
		}
	}
	ctx := context.Background()
	_, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (message, target_user_id, target_roles) VALUES
		('to alice', 'alice', NULL),
		('to sales', NULL, '{SALES}'),
		('to bob and sales', 'bob', '{SALES}'),
		('to everyone', NULL, NULL),
		('to nobody here', 'zed', '{NOBODY}'),
		('to users and admins', NULL, '{USER,ADMIN}')`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"alice": {"to alice", "to everyone", "to users and admins"},
		"bob":   {"to bob and sales", "to everyone", "to users and admins"},
		"carol": {"to sales", "to bob and sales", "to everyone", "to users and admins"},
		"dave":  {"to everyone"},
	}
	readers := map[string]*apptest.Reader{"alice": alice, "bob": bob, "carol": carol, "dave": dave}
	// A final broadcast marks the end: everything before it has been fanned out.
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ('end')`); err != nil {
		t.Fatal(err)
	}
	for user, r := range readers {
		var got []string
		for {
			m, ok := r.NextOfType("notification", 10*time.Second)
			if !ok {
				t.Fatalf("%s: stream ended before the end marker; got %v", user, got)
			}
			if msg := m.Notification().Message; msg != "end" {
				got = append(got, msg)
				continue
			}
			break
		}
		if fmt.Sprint(got) != fmt.Sprint(want[user]) {
			t.Errorf("%s received %q, want %q", user, got, want[user])
		}
	}
}

// TestResumeWithInterleavedCommits pins guarantee 2: producers hold their
// transactions open for random times (so commit order differs from insert
// order) while a client keeps dropping its stream and resuming; the client
// ends up with every notification exactly once, in order. Half the
// producers send born published (notify.send, numbered in their own
// transaction), the others insert for the workers to publish.
func TestResumeWithInterleavedCommits(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.Worker.BatchSize = 7 // many small batches: more interleaving
	srv := env.Start(cfg)
	token := env.Token("alice")

	const producers, perProducer = 6, 40
	total := producers * perProducer
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for i := range perProducer {
				tx, err := env.DB.Pool.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				target := "alice"
				if i%3 == 0 {
					target = "bob" // not for alice: must never reach her
				}
				produce := `INSERT INTO notify.notifications (message, target_user_id) VALUES ($1, $2)`
				if p%2 == 1 {
					produce = `SELECT notify.send($1, target_user_id => $2)`
				}
				if _, err := tx.Exec(ctx, produce, fmt.Sprintf("p%d-%d", p, i), target); err != nil {
					errs <- err
					return
				}
				// Hold the transaction open: later inserts commit first.
				time.Sleep(time.Duration(rng.IntN(15)) * time.Millisecond)
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wantAlice := 0
	for i := range perProducer {
		if i%3 != 0 {
			wantAlice += producers
		}
	}
	_ = total

	seen := map[string]int{}
	var order []int64
	// From seq 0: the producers are already running, and a first stream
	// without Last-Event-ID would be live only from its connected message,
	// so what they published before it subscribed would never reach it.
	last := "0"
	rng := rand.New(rand.NewPCG(42, 42))
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < wantAlice && time.Now().Before(deadline) {
		r, err := apptest.TryOpen(srv.URL(), token, last)
		if err != nil {
			t.Fatalf("resume from %q: %v", last, err)
		}
		take := 1 + rng.IntN(12) // drop the stream after a few notifications
		for take > 0 && len(seen) < wantAlice {
			m, ok := r.NextOfType("notification", 10*time.Second)
			if !ok {
				break
			}
			n := m.Notification()
			seen[n.Message]++
			order = append(order, apptest.SeqOf(m))
			if n.TargetUserID == nil || *n.TargetUserID != "alice" {
				t.Errorf("alice received %q meant for %v", n.Message, n.TargetUserID)
			}
			last = m.EventID
			take--
		}
		r.Close()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != wantAlice {
		t.Fatalf("alice got %d distinct notifications, want %d; %s", len(seen), wantAlice, missing(t, env, seen, order))
	}
	for msg, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", msg, n)
		}
	}
	if !sort.SliceIsSorted(order, func(i, j int) bool { return order[i] < order[j] }) {
		t.Errorf("event ids not increasing: %v", order)
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("event id %d after %d", order[i], order[i-1])
		}
	}
}

// missing says which of alice's notifications a client did not get: their
// seqs and when they were created and published, beside the last seqs it
// got, for a failure's message.
func missing(t *testing.T, env *apptest.Env, seen map[string]int, order []int64) string {
	t.Helper()
	rows, err := env.DB.Pool.Query(context.Background(), `SELECT message, COALESCE(seq, -1), created_at, published_at
		FROM notify.notifications WHERE target_user_id = 'alice' ORDER BY seq NULLS FIRST`)
	if err != nil {
		return fmt.Sprintf("(the missing ones could not be read: %v)", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var msg string
		var seq int64
		var created time.Time
		var published *time.Time
		if err := rows.Scan(&msg, &seq, &created, &published); err != nil {
			return fmt.Sprintf("(the missing ones could not be read: %v)", err)
		}
		if seen[msg] == 0 {
			out = append(out, fmt.Sprintf("%s seq %d created %s published %v", msg, seq, created.Format(time.RFC3339Nano), published))
		}
	}
	return fmt.Sprintf("missing: %v; the last seqs received: %v", out, order[max(0, len(order)-12):])
}

// TestListenerKilled: the LISTEN connection is terminated by the server; the
// process reconnects and catches up from the table, losing nothing. The
// notifications sent meanwhile are born published by another session (as
// another node's notify.send would be), so only this node's feed can bring
// them: what its own worker publishes it hands on without the listener.
func TestListenerKilled(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	r := apptest.Open(t, srv.URL(), env.Token("alice"), "")
	ctx := context.Background()
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (message)
		SELECT 'n' || g FROM generate_series(1, 10) g`); err != nil {
		t.Fatal(err)
	}
	r.Notifications(10, 10*time.Second)
	for round := range 3 {
		var killed int
		testkit.Eventually(t, 15*time.Second, "the listener's LISTEN connection", func() bool {
			err := env.DB.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = 'notifyd-listener'`).Scan(&killed)
			if err != nil {
				t.Fatalf("terminate listener: %v", err)
			}
			return killed > 0
		})
		// Sent while the listener may be down: caught up after reconnect.
		from := 11 + round*10
		if _, err := env.DB.Pool.Exec(ctx, `SELECT count(notify.send('n' || g)) FROM generate_series($1::int, $2::int) g`,
			from, from+9); err != nil {
			t.Fatal(err)
		}
		got := r.Notifications(10, 15*time.Second)
		for i, m := range got {
			if want := "n" + strconv.Itoa(from+i); m.Notification().Message != want {
				t.Fatalf("round %d: got %q at %d, want %q", round, m.Notification().Message, i, want)
			}
		}
	}
}
