package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/testkit/pgbouncertest"
)

// liveWithin bounds the time from a commit to its delivery on a stream in
// the PgBouncer tests. The worker's poll is a minute there and the feed's
// 5 s, so a delivery this quick came through LISTEN.
const liveWithin = 2 * time.Second

// behindBouncer is an environment with a PgBouncer in transaction mode in
// front of its database, and a node configuration whose DATABASE_URL is the
// bouncer, without a publish limit: the concurrency checks publish as fast
// as they can.
func behindBouncer(t *testing.T) (*apptest.Env, *pgbouncertest.Bouncer, app.Config) {
	t.Helper()
	env := apptest.NewEnv(t)
	bouncer := pgbouncertest.Start(t)
	t.Cleanup(func() {
		// Runs after the node stopped (cleanups run last first), so its
		// shutdown is covered too.
		noCancelRequests(t, bouncer.Log())
		if t.Failed() { // e.g. the bouncer went away mid-test (once in CI, 2026-12-07)
			t.Logf("pgbouncer's log:\n%s", bouncer.Log())
		}
	})
	cfg := env.Config()
	cfg.DatabaseURL = bouncer.URL(env.DB.Name)
	cfg.PublishRate = -1
	return env, bouncer, cfg
}

// noCancelRequests fails if the bouncer's log shows a cancel request. notifyd
// lets a statement whose context is cancelled finish (postgres.PoolConfig's
// CancelGrace) and none of these tests' statements runs into a deadline, so
// none should reach the pooler: PgBouncer 1.18 to 1.20, Debian 12's 1.18
// among them, can exit on one (pgbouncer#822). Before the grace, the
// streams these tests close while they open made the bouncer log "closing
// because: successfully sent cancel request".
func noCancelRequests(t *testing.T, log string) {
	t.Helper()
	for line := range strings.Lines(log) {
		if strings.Contains(line, "cancel request") {
			t.Errorf("a cancel request reached PgBouncer: %s", strings.TrimSpace(line))
		}
	}
}

// TestBehindPgBouncer runs the core end-to-end checks with DATABASE_URL on
// a PgBouncer in transaction mode (its default configuration otherwise:
// no ignore_startup_parameters) and DATABASE_DIRECT_URL on the server
// itself: publishing by HTTP and by SQL through the pooler, live delivery
// (well under the polls, so through LISTEN), resume with Last-Event-ID, the
// worker publishing, /readyz ready, and many concurrent requests without a
// 500. It fails when DATABASE_DIRECT_URL is not honoured: the listener then
// hears nothing and the worker, polling once a minute, publishes nothing in
// time.
func TestBehindPgBouncer(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, bouncer, cfg := behindBouncer(t)
	cfg.DatabaseDirectURL = env.DB.URL
	cfg.Worker.PollInterval = time.Minute
	srv := env.Start(cfg)
	ctx := context.Background()

	waitReadyBody(t, srv.URL(), http.StatusOK, 15*time.Second, func(body string) bool {
		return !strings.Contains(body, "listener") // not even a note: LISTEN is direct
	})
	alice := apptest.Open(t, srv.URL(), env.Token("alice", "USER"), "")
	if _, ok := alice.NextOfType("connected", 5*time.Second); !ok {
		t.Fatal("no connected message")
	}
	// An internal app behind the same pooler inserts, without named
	// prepared statements of its own.
	producer, err := pgx.Connect(ctx, bouncer.URL(env.DB.Name)+"&default_query_exec_mode=exec")
	if err != nil {
		t.Fatalf("connect through pgbouncer: %v", err)
	}
	defer producer.Close(ctx)

	var last string
	t.Run("SQL insert through the pooler is delivered live", func(t *testing.T) {
		for i := range 5 {
			start := time.Now()
			if _, err := producer.Exec(ctx, `INSERT INTO notify.notifications (message, target_user_id) VALUES ($1, 'alice')`,
				fmt.Sprintf("sql %d", i)); err != nil {
				t.Fatalf("insert through pgbouncer: %v", err)
			}
			m := nextNotification(t, alice, fmt.Sprintf("sql %d", i), start)
			last = m.EventID
		}
	})
	t.Run("HTTP publish is delivered live", func(t *testing.T) {
		start := time.Now()
		body := `{"targetUserId":"alice","message":"over http","severity":"high"}`
		if code, b := bouncerDo(t, http.MethodPost, srv.URL()+"/api/notifications", env.Token("ops", "ADMIN"), body); code != http.StatusCreated {
			t.Fatalf("POST /api/notifications: %d %s", code, b)
		}
		last = nextNotification(t, alice, "over http", start).EventID
	})
	t.Run("resume with Last-Event-ID", func(t *testing.T) {
		alice.Close()
		for i := range 3 {
			if _, err := producer.Exec(ctx, `INSERT INTO notify.notifications (message, target_user_id) VALUES ($1, 'alice')`,
				fmt.Sprintf("missed %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		again := apptest.Open(t, srv.URL(), env.Token("alice", "USER"), last)
		for i, m := range again.Notifications(3, 10*time.Second) {
			if got, want := m.Notification().Message, fmt.Sprintf("missed %d", i); got != want {
				t.Fatalf("resumed notification %d is %q, want %q", i, got, want)
			}
		}
		start := time.Now()
		if _, err := producer.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ('after the resume')`); err != nil {
			t.Fatal(err)
		}
		nextNotification(t, again, "after the resume", start)
	})
	t.Run("many concurrent requests, none failing", func(t *testing.T) {
		concurrentRequests(t, env, srv.URL())
	})
	t.Run("the worker published everything", func(t *testing.T) {
		// The concurrent requests published too: give the worker the moment
		// their last batch takes.
		var pending, sent int64
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if err := env.DB.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status <> 'sent'), count(*) FILTER (WHERE status = 'sent')
				FROM notify.queue_items`).Scan(&pending, &sent); err != nil {
				t.Fatal(err)
			}
			if pending == 0 || time.Now().After(deadline) {
				break
			}
		}
		if pending != 0 || sent == 0 {
			t.Fatalf("queue: %d not sent, %d sent", pending, sent)
		}
	})
	waitReadyBody(t, srv.URL(), http.StatusOK, 5*time.Second, func(string) bool { return true })
	if t.Failed() {
		t.Logf("pgbouncer log:\n%s", bouncer.Log())
	}
}

// TestPgBouncerWithoutDirectURL: with DATABASE_URL on PgBouncer in
// transaction mode and no DATABASE_DIRECT_URL, requests still succeed (the
// pooler is detected, and its pools use no named prepared statements), but
// LISTEN cannot work, and /readyz says so and what to set.
func TestPgBouncerWithoutDirectURL(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, _, cfg := behindBouncer(t)
	cfg.NoMigrate = true // goose's session lock needs a session of its own; the database is migrated
	srv := env.Start(cfg)

	var body string
	waitReadyBody(t, srv.URL(), http.StatusServiceUnavailable, 30*time.Second, func(b string) bool {
		body = b
		return strings.Contains(b, "pooled connection") && strings.Contains(b, "DATABASE_DIRECT_URL")
	})
	t.Logf("/readyz: %s", body)
	concurrentRequests(t, env, srv.URL())
}

// concurrentRequests sends many requests at once that go to the pooled
// pools (publishing, history, unread counts, stream openings) and fails on
// any 5xx: named prepared statements through a transaction pooler make
// some of them fail with "prepared statement … already exists".
func concurrentRequests(t *testing.T, env *apptest.Env, base string) {
	t.Helper()
	admin := env.Token("ops", "ADMIN")
	const clients, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan string, clients*each)
	for c := range clients {
		user := fmt.Sprintf("user%d", c)
		token := env.Token(user, "USER")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var code int
				var b string
				switch i % 4 {
				case 0:
					code, b = bouncerDo(t, http.MethodPost, base+"/api/notifications", admin,
						fmt.Sprintf(`{"targetUserId":%q,"message":"load %d"}`, user, i))
				case 1:
					code, b = bouncerDo(t, http.MethodGet, base+"/api/notifications?limit=20", token, "")
				case 2:
					code, b = bouncerDo(t, http.MethodGet, base+"/api/notifications/unread-count", token, "")
				case 3:
					// Every other stream is closed as soon as its headers are
					// out, while it opens, the others after their connected
					// message; no cancel request may follow (noCancelRequests).
					r, err := apptest.TryOpen(base, token, "0")
					switch {
					case err != nil:
						code, b = http.StatusInternalServerError, err.Error()
					case i%8 == 7:
						code = http.StatusOK
					default:
						code = http.StatusOK
						if _, ok := r.NextOfType("connected", 10*time.Second); !ok {
							code, b = http.StatusInternalServerError, "stream opened without a connected message"
						}
					}
					if r != nil {
						r.Close()
					}
				}
				if code >= 500 {
					errs <- fmt.Sprintf("request %d of %s: %d %s", i, user, code, b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// nextNotification waits for the notification with message on r and fails
// unless it arrived within liveWithin of start.
func nextNotification(t *testing.T, r *apptest.Reader, message string, start time.Time) apptest.Message {
	t.Helper()
	for {
		m, ok := r.NextOfType("notification", 10*time.Second)
		if !ok {
			t.Fatalf("%q never arrived (%s after the insert)", message, time.Since(start).Round(time.Millisecond))
		}
		if m.Notification().Message != message {
			continue
		}
		if took := time.Since(start); took > liveWithin {
			t.Fatalf("%q took %s, more than %s: not delivered live (the polls delivered it)", message, took.Round(time.Millisecond), liveWithin)
		}
		return m
	}
}

// waitReadyBody polls /readyz until it answers want with a body that ok
// accepts.
func waitReadyBody(t *testing.T, base string, want int, within time.Duration, ok func(body string) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := bouncerDo(t, http.MethodGet, base+"/readyz", "", "")
		if code == want && ok(body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s; want %d", code, body, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func bouncerDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return http.StatusInternalServerError, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
