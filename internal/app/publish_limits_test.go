package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// publishLoad sends POST /api/notifications with token, request i no earlier
// than start + i/rate, from a pool of concurrent senders, and counts the
// answers by status. It never asserts on speed: a slow machine offers less
// than rate, and the answers are what is checked.
func publishLoad(t *testing.T, base, token string, rate, total int) map[int]int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	jobs := make(chan int)
	var mu sync.Mutex
	counts := map[int]int{}
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			for i := range jobs {
				body := fmt.Sprintf(`{"targetUserId":"user-%d","module":"orders","message":"order %d"}`, i%50, i)
				req, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/api/notifications", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err)
					continue
				}
				resp.Body.Close()
				mu.Lock()
				counts[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d) // pacing the load, not waiting for a result
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return counts
}

// TestServicePublishRate: an admin service token sustains 1,000 publishes a
// second over HTTP for three seconds at default settings without a single
// 429 (admin roles have their own limit, NOTIFY_ADMIN_PUBLISH_RATE), while
// an ordinary user's test action is still limited per user
// (NOTIFY_PUBLISH_RATE).
func TestServicePublishRate(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.PoolSize = 12
	srv := env.Start(cfg) // default limits

	counts := publishLoad(t, srv.URL(), env.Token("orders-service", "ADMIN"), 1000, 3000)
	t.Logf("answers: %v", counts)
	if counts[http.StatusTooManyRequests] != 0 || counts[http.StatusCreated] != 3000 {
		t.Fatalf("service token at 1,000/s: %v; want 3000 × 201 and no 429", counts)
	}

	// An ordinary user's test action: its bucket (50/s, bursts of 100)
	// runs dry long before 5,000 requests, however fast the machine.
	user := env.Token("user-1", "USER")
	limited := false
	for i := 0; i < 5000 && !limited; i++ {
		resp := request(t, "POST", srv.URL()+"/api/notifications/ws", user, `{"action":"test"}`, nil)
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited = resp.Header.Get("Retry-After") != ""
		default:
			t.Fatalf("test action %d: %d", i, resp.StatusCode)
		}
	}
	if !limited {
		t.Fatal("an ordinary user's test action was never limited")
	}
}
