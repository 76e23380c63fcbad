package stream_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/feed"
	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
	"github.com/notifyd/notifyd/internal/wire"
)

// world is one node's stream path over a test database: a hub with a
// window, the feed following the table into it, and a publisher.
type world struct {
	db    *pgtest.DB
	hub   *hub.Hub
	feed  *feed.Feed
	store *postgres.Notifications
	inbox *postgres.Inbox
	queue *postgres.Queue
}

func setupWorld(t *testing.T, window int) *world {
	t.Helper()
	db := pgtest.NewQueued(t)
	w := &world{db: db, hub: hub.New(hub.Config{Window: window, MaxPending: 100_000}),
		store: postgres.NewNotifications(db.Pool), inbox: postgres.NewInbox(db.Pool), queue: postgres.NewQueue(db.Pool)}
	w.feed = feed.New(w.store, w.hub, feed.Config{Logger: quiet, PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.feed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.feed.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// send inserts notifications (VALUES rows over target_user_id,
// target_roles, module, severity, message), publishes them and waits until
// the feed has handed them to the hub. It returns the last seq.
func (w *world) send(t testing.TB, values string) int64 {
	t.Helper()
	ctx := context.Background()
	pgtest.Exec(t, ctx, w.db.Pool, `INSERT INTO notify.notifications (target_user_id, target_roles, module, severity, message) VALUES `+values)
	var last int64
	for {
		b, err := w.queue.ClaimAndPublish(ctx, 1000, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if b.Items == 0 {
			break
		}
		last = b.LastSeq
	}
	w.feed.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for w.feed.Position() < last {
		if time.Now().After(deadline) {
			t.Fatalf("feed at %d, want %d", w.feed.Position(), last)
		}
		time.Sleep(time.Millisecond)
	}
	return last
}

// serve starts a stream server over store (the replay's store) and the
// world's hub and inbox, counting resumes by source.
func (w *world) serve(t *testing.T, store *postgres.Notifications, id notify.Identity, deferCount bool) (url string, resumes func() map[string]int) {
	t.Helper()
	url, resumes, _ = w.serveServer(t, store, id, deferCount)
	return url, resumes
}

// serveServer is serve, also returning the server.
func (w *world) serveServer(t *testing.T, store *postgres.Notifications, id notify.Identity, deferCount bool) (url string, resumes func() map[string]int, srv *stream.Server) {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	var err error
	srv, err = stream.NewServer(w.hub, store, stream.Config{Logger: quiet, DeferUnreadCount: deferCount, Observer: stream.Observer{Resumed: func(source string) {
		mu.Lock()
		counts[source]++
		mu.Unlock()
	}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.WithInbox(w.inbox).WithLivePosition(w.feed.Position)
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		seq, ok, err := stream.ParseResume(r.Header.Get("Last-Event-ID"), "")
		if err != nil {
			t.Error(err)
			return
		}
		if err := srv.Serve(r.Context(), rw, id, stream.Resume{Seq: seq, Set: ok}); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(counts)
	}, srv
}

// resumeFrom opens a stream with Last-Event-ID after and returns the seqs
// of its first n notifications (after the connected message).
func resumeFrom(t *testing.T, url string, after int64, n int) ([]int64, *wire.Stream) {
	t.Helper()
	got, s, err := readResumed(url, after, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return got, s
}

// readResumed is resumeFrom for any goroutine.
func readResumed(url string, after int64, n int) ([]int64, *wire.Stream, error) {
	s, err := wire.Open(context.Background(), http.DefaultClient, url, http.Header{"Last-Event-ID": {strconv.FormatInt(after, 10)}})
	if err != nil {
		return nil, nil, err
	}
	var got []int64
	for len(got) < n {
		ev, err := s.Next()
		if err != nil {
			s.Close()
			return got, nil, fmt.Errorf("resume from %d, after %v: %w", after, got, err)
		}
		if ev.ID == "" {
			if strings.Contains(string(ev.Data), `"replay"`) {
				s.Close()
				return got, nil, fmt.Errorf("resume from %d: status %s", after, ev.Data)
			}
			continue
		}
		seq, _ := strconv.ParseInt(ev.ID, 10, 64)
		got = append(got, seq)
	}
	return got, s, nil
}

// deadStore is a replay store whose database cannot be reached.
func deadStore(t *testing.T, db *pgtest.DB) *postgres.Notifications {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	return postgres.NewNotifications(pool)
}

// TestResumeInsideWindowReadsNoDatabase: a resume from a point the hub's
// window holds is answered with no replay query — the replay's database is
// unreachable — with the user's mutes applied (critical comes through),
// then live notifications, each once. The unread count comes in the
// connected message, or (DeferUnreadCount) in a status message after it.
func TestResumeInsideWindowReadsNoDatabase(t *testing.T) {
	t.Parallel()
	for _, deferCount := range []bool{false, true} {
		t.Run(fmt.Sprint("defer count ", deferCount), func(t *testing.T) {
			t.Parallel()
			w := setupWorld(t, 1000)
			if err := w.inbox.SetMutedModules(context.Background(), "alice", []string{"m1"}); err != nil {
				t.Fatal(err)
			}
			first := w.send(t, `('alice', NULL, NULL, 'low', 'a1'), ('bob', NULL, NULL, 'low', 'b1'),
				('alice', NULL, NULL, 'low', 'a2'), (NULL, '{OPS}', 'm1', 'low', 'muted'), (NULL, '{OPS}', 'm1', 'critical', 'critical'),
				(NULL, NULL, NULL, 'low', 'everyone'), (NULL, '{FIN}', NULL, 'low', 'fin')`) - 7
			url, resumes := w.serve(t, deadStore(t, w.db), notify.Identity{UserID: "alice", Roles: []string{"OPS"}}, deferCount)
			s, err := wire.Open(context.Background(), http.DefaultClient, url, http.Header{"Last-Event-ID": {strconv.FormatInt(first+1, 10)}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// a1, a2, critical and everyone are unread; not the muted one.
			const count = `"unreadCount":4`
			var got []int64
			counted := false
			for len(got) < 3 || !counted {
				ev, err := s.Next()
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				switch {
				case ev.ID != "":
					seq, _ := strconv.ParseInt(ev.ID, 10, 64)
					got = append(got, seq)
				case strings.Contains(string(ev.Data), `"type":"connected"`):
					if strings.Contains(string(ev.Data), count) == deferCount {
						t.Fatalf("connected %s (count deferred: %v)", ev.Data, deferCount)
					}
					counted = !deferCount
				case strings.Contains(string(ev.Data), `"type":"status"`):
					if !deferCount || !strings.Contains(string(ev.Data), count) ||
						!strings.Contains(string(ev.Data), fmt.Sprintf(`"countedThrough":%d`, first+7)) {
						t.Fatalf("status %s, want the unread count 4 through %d", ev.Data, first+7)
					}
					counted = true
				}
			}
			if want := []int64{first + 3, first + 5, first + 6}; !slices.Equal(got, want) {
				t.Fatalf("replayed %v, want %v", got, want)
			}
			if r := resumes(); r[stream.ResumeFromMemory] != 1 || r[stream.ResumeFromDatabase] != 0 {
				t.Fatalf("resumes %v, want one from memory", r)
			}
			last := w.send(t, `('alice', NULL, NULL, 'low', 'a3')`)
			ev, err := s.Next()
			for err == nil && ev.ID == "" {
				ev, err = s.Next()
			}
			if err != nil || ev.ID != strconv.FormatInt(last, 10) {
				t.Fatalf("live event %q %v, want id %d", ev.ID, err, last)
			}
		})
	}
}

// TestResumeOlderThanWindowFromDatabase: a resume point the window no
// longer holds is replayed from the table; so is one before the stream's
// truncation point, which the window may still hold: the client is told
// and gets only what is left.
func TestResumeOlderThanWindowFromDatabase(t *testing.T) {
	t.Parallel()
	for _, deferCount := range []bool{false, true} {
		t.Run(fmt.Sprint("defer count ", deferCount), func(t *testing.T) {
			t.Parallel()
			w := setupWorld(t, 3)
			last := w.send(t, `('carol', NULL, NULL, 'low', 'c1'), ('carol', NULL, NULL, 'low', 'c2'), ('carol', NULL, NULL, 'low', 'c3'),
				('carol', NULL, NULL, 'low', 'c4'), ('carol', NULL, NULL, 'low', 'c5'), ('carol', NULL, NULL, 'low', 'c6')`)
			url, resumes := w.serve(t, w.store, notify.Identity{UserID: "carol"}, deferCount)
			got, _ := resumeFrom(t, url, last-6, 6)
			if want := []int64{last - 5, last - 4, last - 3, last - 2, last - 1, last}; !slices.Equal(got, want) {
				t.Fatalf("replayed %v, want %v", got, want)
			}
			if r := resumes(); r[stream.ResumeFromDatabase] != 1 || r[stream.ResumeFromMemory] != 0 {
				t.Fatalf("resumes %v, want one from the database", r)
			}
			// Inside it again: from memory.
			if got, _ := resumeFrom(t, url, last-2, 2); !slices.Equal(got, []int64{last - 1, last}) {
				t.Fatalf("replayed %v", got)
			}
			if r := resumes(); r[stream.ResumeFromMemory] != 1 {
				t.Fatalf("resumes %v, want one from memory", r)
			}
			// Retention took everything up to last-1.
			pgtest.Exec(t, context.Background(), w.db.Pool, `DELETE FROM notify.notifications WHERE seq <= $1`, last-1)
			pgtest.Exec(t, context.Background(), w.db.Pool, `UPDATE notify.stream_head SET truncated_before = $1`, last-1)
			s, err := wire.Open(context.Background(), http.DefaultClient, url, http.Header{"Last-Event-ID": {strconv.FormatInt(last-2, 10)}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var events []string
			for len(events) == 0 || events[len(events)-1] != strconv.FormatInt(last, 10) {
				ev, err := s.Next()
				if err != nil {
					t.Fatalf("after %q: %v", events, err)
				}
				if strings.Contains(string(ev.Data), `"replay":"truncated"`) {
					events = append(events, "truncated")
				} else if ev.ID != "" {
					events = append(events, ev.ID)
				}
			}
			if want := []string{"truncated", strconv.FormatInt(last, 10)}; !slices.Equal(events, want) {
				t.Fatalf("after truncation: %q, want %q", events, want)
			}
		})
	}
}

// TestResumeFromMemoryConnectedAndMutesInBatch: streams of users with
// different mutes resuming from memory at once (their mutes read together)
// each get a connected message without an unread count, then exactly what
// their own mutes let through.
func TestResumeFromMemoryConnectedAndMutesInBatch(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	w := setupWorld(t, 1000)
	ctx := context.Background()
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	for i, u := range users {
		if err := w.inbox.SetMutedModules(ctx, u, []string{fmt.Sprint("m", i%3)}); err != nil {
			t.Fatal(err)
		}
	}
	last := w.send(t, `(NULL, '{ALL}', 'm0', 'low', 'x'), (NULL, '{ALL}', 'm1', 'low', 'x'), (NULL, '{ALL}', 'm2', 'low', 'x')`)
	var wg sync.WaitGroup
	for i, u := range users {
		url, resumes := w.serve(t, w.store, notify.Identity{UserID: u, Roles: []string{"ALL"}}, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := wire.Open(ctx, http.DefaultClient, url, http.Header{"Last-Event-ID": {strconv.FormatInt(last-3, 10)}})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			var got []string
			for len(got) < 3 {
				ev, err := s.Next()
				if err != nil {
					t.Errorf("%s: %v after %v", u, err, got)
					return
				}
				got = append(got, ev.ID)
				if strings.Contains(string(ev.Data), `"type":"connected"`) && strings.Contains(string(ev.Data), "unreadCount") {
					t.Errorf("%s: connected %s carries the count", u, ev.Data)
				}
			}
			var want []string
			want = append(want, "") // connected
			for k := int64(0); k < 3; k++ {
				if k != int64(i%3) {
					want = append(want, strconv.FormatInt(last-2+k, 10))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s (muting m%d): ids %q, want %q", u, i%3, got, want)
			}
			if r := resumes(); r[stream.ResumeFromMemory] != 1 {
				t.Errorf("%s: resumes %v", u, r)
			}
		}()
	}
	wg.Wait()
}

// TestWindowAgreesWithSQLReplay: for identities with and without roles
// (one, two, one named twice, and more than the SQL gives a range each) and
// mutes, the window gives the same notifications as the table's replay
// (notify.visible_to and the mutes in SQL), byte for byte, over a mix of
// user, role, user-and-role, broadcast, muted and critical targets; and
// the unread count, read through the same audience, counts them.
func TestWindowAgreesWithSQLReplay(t *testing.T) {
	t.Parallel()
	w := setupWorld(t, 1000)
	ctx := context.Background()
	users := []string{"'ann'", "'ben'", "'cat'", "NULL"}
	roles := []string{"NULL", "'{OPS}'", "'{FIN,OPS}'", "'{HR}'"}
	modules := []string{"NULL", "'m1'", "'m2'"}
	sevs := []string{"'low'", "'critical'", "'high'"}
	var rows []string
	for i := 0; i < 200; i++ {
		rows = append(rows, fmt.Sprintf("(%s, %s, %s, %s, 'n%d')", users[i%4], roles[(i/4)%4], modules[(i/16)%3], sevs[(i/3)%3], i))
	}
	last := w.send(t, strings.Join(rows, ", "))
	for user, muted := range map[string][]string{"ann": {"m1"}, "cat": {"m1", "m2"}} {
		if err := w.inbox.SetMutedModules(ctx, user, muted); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []notify.Identity{
		{UserID: "ann"}, {UserID: "ann", Roles: []string{"OPS"}}, {UserID: "ben", Roles: []string{"FIN"}},
		{UserID: "cat", Roles: []string{"HR", "OPS"}}, {UserID: "dan"}, {UserID: "eve", Roles: []string{"FIN", "HR"}},
		{UserID: "ben", Roles: []string{"OPS", "OPS"}}, // a role named twice
		// more roles than the SQL writes a range for each (audience.go)
		{UserID: "fay", Roles: []string{"R1", "R2", "R3", "R4", "R5", "R6", "R7", "FIN", "HR"}},
	} {
		sub, err := w.hub.Subscribe(id)
		if err != nil {
			t.Fatal(err)
		}
		muted, err := w.inbox.MutedModules(ctx, id.UserID)
		if err != nil {
			t.Fatal(err)
		}
		sub.SetMuted(muted)
		frames, through, ok := w.hub.Since(sub, last-200, nil)
		w.hub.Unsubscribe(sub)
		if !ok || through != last {
			t.Fatalf("%v: window ok %v through %d, want through %d", id, ok, through, last)
		}
		ns, err := w.store.Replay(ctx, id, last-200, math.MaxInt64, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) == 0 || len(ns) == 200 {
			t.Errorf("%v sees %d of 200: the mix does not exercise the rule", id, len(ns))
		}
		// Nothing is read, so the unread count (the same audience, read
		// newest first up to its cap) is what the replay gave, capped.
		u, err := w.inbox.Unread(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(len(ns), postgres.UnreadCap); u.Count != want || u.HasMore != (len(ns) > postgres.UnreadCap) {
			t.Errorf("%v: unread %d (more %v), want %d of the %d replayed", id, u.Count, u.HasMore, want, len(ns))
		}
		if len(frames) != len(ns) {
			t.Errorf("%v: window %d notifications, table %d", id, len(frames), len(ns))
		}
		for i := range min(len(frames), len(ns)) {
			if want := wire.NotificationEvent(ns[i]); frames[i].Seq != ns[i].Seq || string(frames[i].Data) != string(want) {
				t.Errorf("%v #%d: window %s\ntable %s", id, i, frames[i].Data, want)
				break
			}
		}
	}
}

// TestWindowHandOffUnderPublishing: streams resume from the window while
// notifications are being published; each gets every notification after
// its resume point once, in order, the window's and the live ones meeting
// without a gap.
func TestWindowHandOffUnderPublishing(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	w := setupWorld(t, 10_000)
	start := w.send(t, `(NULL, '{OPS}', NULL, 'low', 'first')`)
	url, resumes := w.serve(t, w.store, notify.Identity{UserID: "ops", Roles: []string{"OPS"}}, false)
	const batches, perBatch = 40, 10
	row := strings.TrimSuffix(strings.Repeat(`(NULL, '{OPS}', NULL, 'low', 'x'), `, perBatch), ", ")
	final := start + batches*perBatch
	var wg sync.WaitGroup
	type result struct {
		after int64
		got   []int64
		err   error
	}
	results := make(chan result, batches)
	for b := 0; b < batches; b++ {
		at := w.send(t, row)
		if b%4 == 0 { // a stream opens while the next batches are published
			after := at - 5
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, s, err := readResumed(url, after, int(final-after))
				if s != nil {
					s.Close()
				}
				results <- result{after, got, err}
			}()
		}
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		for i, seq := range r.got {
			if seq != r.after+1+int64(i) {
				t.Errorf("resume from %d: #%d is %d, want %d (got %v)", r.after, i, seq, r.after+1+int64(i), r.got)
				break
			}
		}
	}
	if r := resumes(); r[stream.ResumeFromMemory] != batches/4 {
		t.Errorf("resumes %v, want all %d from memory", r, batches/4)
	}
}

// TestCountDeferredOnlyWhenTurnsAreTaken: by default a stream resuming from
// memory gets its unread count in the connected message when a turn at the
// database is free, and in a status message after it when every turn is
// taken (a reconnect storm); the latter waits for no turn of its own
// beyond its share of a batch.
func TestCountDeferredOnlyWhenTurnsAreTaken(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	w := setupWorld(t, 1000)
	last := w.send(t, `('dora', NULL, NULL, 'low', 'd1'), ('dora', NULL, NULL, 'low', 'd2')`)
	url, resumes, srv := w.serveServer(t, w.store, notify.Identity{UserID: "dora"}, false)
	open := func() *wire.Stream {
		s, err := wire.Open(context.Background(), http.DefaultClient, url, http.Header{"Last-Event-ID": {strconv.FormatInt(last-1, 10)}})
		if err != nil {
			t.Error(err)
			return nil
		}
		return s
	}
	// kinds reads until the notification and says what came with it.
	kinds := func(s *wire.Stream) []string {
		var got []string
		for {
			ev, err := s.Next()
			switch {
			case err != nil:
				t.Fatalf("after %q: %v", got, err)
			case ev.ID != "":
				got = append(got, "notification")
			case strings.Contains(string(ev.Data), `"type":"connected"`) && strings.Contains(string(ev.Data), `"unreadCount":2`):
				got = append(got, "connected with count")
			case strings.Contains(string(ev.Data), `"type":"connected"`):
				got = append(got, "connected")
			case strings.Contains(string(ev.Data), `"type":"status"`) && strings.Contains(string(ev.Data), `"unreadCount":2`):
				return append(got, "status with count")
			}
			if len(got) == 2 && got[0] == "connected with count" {
				return got
			}
		}
	}
	s := open()
	defer s.Close()
	if got := kinds(s); !slices.Equal(got, []string{"connected with count", "notification"}) {
		t.Errorf("turns free: %q", got)
	}
	release := stream.HoldTurns(srv)
	opened := make(chan *wire.Stream, 1)
	go func() { opened <- open() }()
	deadline := time.Now().Add(10 * time.Second)
	for stream.MutesWaiting(srv) == 0 {
		if time.Now().After(deadline) {
			release()
			t.Fatal("the stream did not join a batch of mute reads")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	s2 := <-opened
	if s2 == nil {
		return
	}
	defer s2.Close()
	if got := kinds(s2); !slices.Equal(got, []string{"connected", "notification", "status with count"}) {
		t.Errorf("turns taken: %q", got)
	}
	if r := resumes(); r[stream.ResumeFromMemory] != 2 {
		t.Errorf("resumes %v, want both from memory", r)
	}
}
