package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestShutdownUnderLoad: a node stops while producers insert and its
// streams are busy. Its streams are told to come back and resume on the
// other node with nothing lost or repeated; its worker leaves nothing in
// processing.
func TestShutdownUnderLoad(t *testing.T) {
	testkit.Slow(t)
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
	sawFarewell, onFirst := false, true
	for len(seen) < total {
		m, ok := r.Next(15 * time.Second)
		if !ok {
			// The first node closed our stream: resume on the second.
			if shutdownAt > 0 {
				t.Fatalf("stream ended before shutdown, after %d notifications", len(seen))
			}
			r = apptest.Open(t, second.URL(), tok, last)
			onFirst = false
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
	// Draining keeps a stream live until its moment within ReconnectSpread:
	// it may have carried everything before being told.
	for onFirst && !sawFarewell {
		m, ok := r.Next(15 * time.Second)
		if !ok {
			break
		}
		if m.Type == "notification" {
			seen[m.Notification().Message]++
		}
		sawFarewell = m.Type == "status" && strings.Contains(string(m.Data), `"closing":"shutdown"`)
	}
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

// TestShutdownSpreadsReconnects: a node that shuts down drains its streams:
// each stays live until its own moment within ReconnectSpread and is then
// told to come back at once (data.reconnectAfter 0 for the browser client;
// the SSE retry field at its floor of 250 ms), so a rolling restart
// sends the clients to the next node spread out, and none of them waits out
// a delay while notifications pile up.
func TestShutdownSpreadsReconnects(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.Stream.ReconnectSpread = 4 * time.Second
	srv := env.Start(cfg)
	const streams = 30
	readers := make([]*apptest.Reader, streams)
	for i := range readers {
		readers[i] = apptest.Open(t, srv.URL(), env.Token(fmt.Sprintf("u%d", i)), "")
		if _, ok := readers[i].NextOfType("connected", 10*time.Second); !ok {
			t.Fatal("stream did not connect")
		}
	}
	closedAt := make([]time.Time, streams)
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, ok := r.NextOfType("status", 15*time.Second)
			closedAt[i] = time.Now()
			var data struct {
				Closing        string `json:"closing"`
				ReconnectAfter *int64 `json:"reconnectAfter"`
			}
			if !ok || json.Unmarshal(m.Data, &data) != nil || data.Closing != "shutdown" || data.ReconnectAfter == nil {
				t.Errorf("stream %d: got %s, want a closing status with reconnectAfter", i, m.Data)
				return
			}
			// The SSE retry is stream's closingRetryFloor: an EventSource
			// keeps it for every attempt while the server is away.
			if *data.ReconnectAfter != 0 || m.Retry != 250*time.Millisecond {
				t.Errorf("stream %d: reconnectAfter %d ms, SSE retry %s; want 0 (its close was the spread moment) and 250ms", i, *data.ReconnectAfter, m.Retry)
			}
		}()
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	first, last := slices.MinFunc(closedAt, time.Time.Compare), slices.MaxFunc(closedAt, time.Time.Compare)
	// 30 moments drawn from [0, 4 s) all within one second of each other
	// would mean the closes were not spread.
	if span := last.Sub(first); span < time.Second {
		t.Errorf("the %d streams were closed within %s of each other: not spread over ReconnectSpread", streams, span)
	}
}
