package app_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// loginAttempts counts the sign-ins recorded in the database.
func loginAttempts(t *testing.T, env *apptest.Env) int {
	t.Helper()
	var n int
	if err := env.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM notify.login_attempts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSignInStartsAreRateLimited: every GET /auth/login writes a row, so one
// address may start only a burst of sign-ins; the rest get 429 with
// Retry-After and write nothing. X-Forwarded-For does not buy new buckets.
func TestSignInStartsAreRateLimited(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.LoginRate = 0.01 // one token per 100 s: no refill during the test
	cfg.LoginBurst = 5
	cfg.RedirectURL = "https://notify.example/auth/callback" // browser sign-in on; these tests only start sign-ins
	srv := env.Start(cfg)
	b := newBrowser(t)
	started, limited := 0, 0
	for i := range 50 {
		h := http.Header{"X-Forwarded-For": {fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)}}
		resp, body := b.do("GET", srv.URL()+"/auth/login", nil, h)
		switch resp.StatusCode {
		case http.StatusFound:
			started++
		case http.StatusTooManyRequests:
			limited++
			if resp.Header.Get("Retry-After") == "" || errorOf(body) == "" {
				t.Fatalf("429 without Retry-After or a JSON error: %v %s", resp.Header, body)
			}
		default:
			t.Fatalf("login %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if started > 5 || limited < 45 {
		t.Errorf("%d sign-ins started and %d refused, want at most the burst of 5 started", started, limited)
	}
	if n := loginAttempts(t, env); n > 5 {
		t.Errorf("%d login_attempts rows after 50 requests from one address, want at most the burst (5)", n)
	}
}

// TestPendingSignInsAreCapped: however many addresses start sign-ins, the
// table of sign-ins in progress cannot grow past the cap; beyond it 503.
func TestPendingSignInsAreCapped(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.LoginRate, cfg.LoginBurst = 1000, 1000 // as if each came from elsewhere
	cfg.MaxPendingSignIns = 3
	cfg.RedirectURL = "https://notify.example/auth/callback" // browser sign-in on; these tests only start sign-ins
	srv := env.Start(cfg)
	b := newBrowser(t)
	refused := 0
	for range 10 {
		resp, body := b.do("GET", srv.URL()+"/auth/login", nil, nil)
		switch resp.StatusCode {
		case http.StatusFound:
		case http.StatusServiceUnavailable:
			refused++
			if resp.Header.Get("Retry-After") == "" || errorOf(body) == "" {
				t.Fatalf("503 without Retry-After or a JSON error: %v %s", resp.Header, body)
			}
		default:
			t.Fatalf("login: %d %s", resp.StatusCode, body)
		}
	}
	if n := loginAttempts(t, env); n != 3 || refused != 7 {
		t.Errorf("%d sign-ins pending and %d refused, want 3 and 7", n, refused)
	}
}

// TestMalformedSessionCookiesDoNoDatabaseWork: a cookie that cannot be one
// notifyd issued (wrong length or encoding) is refused without a query.
func TestMalformedSessionCookiesDoNoDatabaseWork(t *testing.T) {
	t.Parallel()
	_, srv := apptest.NewNode(t)
	garbage := []string{
		"x", "abc", strings.Repeat("a", 42), strings.Repeat("a", 44), strings.Repeat("a", 128),
		strings.Repeat("!", 43), strings.Repeat("a", 42) + "=", strings.Repeat("a", 42) + "+",
		strings.Repeat("A", 42) + "B", // 43 characters, but the last one has bits a 32-byte value cannot have
	}
	before := app.SessionPoolStat(srv).AcquireCount()
	for _, cookie := range garbage {
		for _, path := range []string{"/api/notifications/ws", "/api/notifications/unread-count"} {
			req, _ := http.NewRequest("GET", srv.URL()+path, nil)
			req.AddCookie(&http.Cookie{Name: "notifyd_session", Value: cookie})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with cookie %.20q: %d, want 401", path, cookie, resp.StatusCode)
			}
		}
	}
	if n := app.SessionPoolStat(srv).AcquireCount() - before; n != 0 {
		t.Errorf("malformed cookies acquired %d database connections, want none", n)
	}
}

// randomCookie is well-formed (as notifyd issues them) but names no session,
// so checking it takes a database look-up.
func randomCookie() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestLockedSessionsFailFast: when session look-ups stall (here: a lock held
// on notify.sessions), cookie requests fail with 503 within the statement
// timeout, on their own pool, while bearer streams keep working and the
// worker keeps publishing on the main pool.
func TestLockedSessionsFailFast(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	const timeout = 500 * time.Millisecond
	cfg.AuthStatementTimeout = timeout
	srv := env.Start(cfg)
	bob := apptest.Open(t, srv.URL(), env.Token("bob"), "")
	if _, ok := bob.NextOfType("connected", 5*time.Second); !ok {
		t.Fatal("no connected message")
	}

	tx, err := env.DB.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), `LOCK TABLE notify.sessions IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	// More cookie requests at once than the main pool has connections.
	client := &http.Client{Timeout: 10 * time.Second}
	type result struct {
		status int
		took   time.Duration
		err    error
	}
	results := make([]result, 2*int(cfg.PoolSize))
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", srv.URL()+"/api/notifications/unread-count", nil)
			req.AddCookie(&http.Cookie{Name: "notifyd_session", Value: randomCookie()})
			start := time.Now()
			resp, err := client.Do(req)
			results[i] = result{took: time.Since(start), err: err}
			if err == nil {
				results[i].status = resp.StatusCode
				resp.Body.Close()
			}
		})
	}

	// Meanwhile publishing, the worker and bearer streams are unaffected.
	resp := request(t, "POST", srv.URL()+"/api/notifications", env.Token("svc", "ADMIN"),
		`{"message":"still here","targetUserId":"bob"}`, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish while sessions are locked: %d", resp.StatusCode)
	}
	if got := bob.Notifications(1, 5*time.Second); len(got) != 1 {
		t.Fatal("the notification did not arrive on the bearer stream while sessions were locked")
	}
	apptest.Open(t, srv.URL(), env.Token("carol"), "")

	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.status != http.StatusServiceUnavailable || r.took > timeout+time.Second {
			t.Errorf("cookie request %d: %d after %v (%v), want 503 within about %v", i, r.status, r.took.Round(time.Millisecond), r.err, timeout)
		}
	}
}
