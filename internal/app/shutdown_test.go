package app_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/apptest"
)

// TestShutdownUnderLoad: a node stops while producers insert and its
// streams are busy. Its streams are told to come back and resume on the
// other node with nothing lost or repeated; its worker leaves nothing in
// processing.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.Worker.BatchSize = 20
	first := env.Start(cfg)
	second := env.Start(cfg)
	tok := env.Token("alice")
	r := apptest.Open(t, first.URL(), tok, "")

	const total = 3000
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // producers: 60 inserts of 50 rows
		defer wg.Done()
		for i := 0; i < total; i += 50 {
			if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (message)
				SELECT 'n' || g FROM generate_series($1::int, $1::int + 49) g`, i); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(2 * time.Millisecond) // pace the producer so the shutdown lands mid-load
		}
	}()

	seen := map[string]int{}
	var last string
	shutdownAt := total / 3
	shutdownDone := make(chan error, 1)
	sawFarewell := false
	for len(seen) < total {
		m, ok := r.Next(15 * time.Second)
		if !ok {
			// The first node closed our stream: resume on the second.
			if shutdownAt > 0 {
				t.Fatalf("stream ended before shutdown, after %d notifications", len(seen))
			}
			r = apptest.Open(t, second.URL(), tok, last)
			continue
		}
		switch m.Type {
		case "status":
			if strings.Contains(string(m.Data), `"closing":"shutdown"`) {
				sawFarewell = true
			}
		case "notification":
			seen[m.Notification().Message]++
			last = m.EventID
			if len(seen) == shutdownAt {
				shutdownAt = 0
				go func() { shutdownDone <- first.Shutdown(context.Background()) }()
			}
		}
	}
	wg.Wait()
	if err := <-shutdownDone; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if !sawFarewell {
		t.Error("the stream was not told the server was shutting down")
	}
	for msg, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", msg, n)
		}
	}
	if len(seen) != total {
		t.Fatalf("received %d distinct notifications, want %d", len(seen), total)
	}
	var processing int
	if err := env.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM notify.queue_items WHERE status <> 'sent'`).Scan(&processing); err != nil || processing != 0 {
		t.Fatalf("%d items not sent after the load (%v)", processing, err)
	}
}
