package stream_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestDrainClosesEachStreamToComeBackAtOnce: Drain closes every stream,
// each with a closing status that says to reconnect at once (Drain spread
// the closes, so the clients need not spread their returns), and returns
// when none is left.
func TestDrainClosesEachStreamToComeBackAtOnce(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	h, srv, streams := drainServer(t, stream.Config{Logger: quiet}, 20)
	srv.Drain(context.Background())
	for i, s := range streams {
		ev := next(t, s)
		if !strings.Contains(string(ev.Data), `"closing":"shutdown"`) || !strings.Contains(string(ev.Data), `"reconnectAfter":0`) {
			t.Errorf("stream %d: %s, want a closing status with reconnectAfter 0", i, ev.Data)
		}
		if _, err := s.Next(); err != io.EOF {
			t.Errorf("stream %d after its closing status: %v, want the end", i, err)
		}
	}
	testkit.Eventually(t, 10*time.Second, "the condition", func() bool { return h.Len() == 0 })
}

// TestDrainWindow: the closes take n/DrainRate, at least ReconnectSpread,
// and never past the stop's budget.
func TestDrainWindow(t *testing.T) {
	cfg := stream.Config{ReconnectSpread: 3 * time.Second, DrainRate: 500}
	for _, c := range []struct {
		n      int
		budget time.Duration
		want   time.Duration
	}{
		{0, -1, 3 * time.Second},
		{100, -1, 3 * time.Second},
		{3000, -1, 6 * time.Second},
		{7000, -1, 14 * time.Second},
		{7000, 8 * time.Second, 8 * time.Second},
		{100, time.Second, time.Second},
		{100, 0, 0},
	} {
		if got := stream.DrainWindow(cfg, c.n, c.budget); got != c.want {
			t.Errorf("%d streams, budget %s: window %s, want %s", c.n, c.budget, got, c.want)
		}
	}
}

// TestDrainPacesTheCloses: Drain hands its streams back no faster than
// DrainRate, each at its own moment, and within the stop's deadline when
// that is shorter.
func TestDrainPacesTheCloses(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	for _, c := range []struct {
		name     string
		deadline time.Duration // 0: none
		min, max time.Duration // the drain's span, first close to last
	}{
		// 40 streams at 40 a second: one moment in each 25 ms slot of 1 s.
		{"rate", 0, 800 * time.Millisecond, 3 * time.Second},
		// A stop with 500 ms left drains within 400 ms (a fifth is kept
		// for the rest of the shutdown).
		{"deadline", 500 * time.Millisecond, 150 * time.Millisecond, 450 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 40
			h, srv, streams := drainServer(t, stream.Config{Logger: quiet, ReconnectSpread: time.Millisecond, DrainRate: 40}, n)
			closed := make([]time.Time, n)
			var wg sync.WaitGroup
			for i, s := range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if ev, err := s.Next(); err != nil || !strings.Contains(string(ev.Data), `"closing":"shutdown"`) {
						t.Errorf("stream %d: %v %s, want a closing status", i, err, ev.Data)
					}
					closed[i] = time.Now()
				}()
			}
			ctx := context.Background()
			if c.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.deadline)
				defer cancel()
			}
			srv.Drain(ctx)
			// As a shutdown does after Drain: whatever it left is closed now.
			h.CloseWhere(func(notify.Identity) bool { return true }, hub.ReasonShutdown)
			wg.Wait()
			first, last := closed[0], closed[0]
			for _, at := range closed {
				if at.Before(first) {
					first = at
				}
				if at.After(last) {
					last = at
				}
			}
			if span := last.Sub(first); span < c.min || span > c.max {
				t.Errorf("%d streams closed over %s, want %s to %s", n, span, c.min, c.max)
			}
		})
	}
}

// drainServer serves streams with cfg until t ends and opens n of them,
// one user each, every one connected and subscribed.
func drainServer(t *testing.T, cfg stream.Config, n int) (*hub.Hub, *stream.Server, []*wire.Stream) {
	t.Helper()
	h := hub.New(hub.Config{})
	srv, err := stream.NewServer(h, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(r.Context(), w, notify.Identity{UserID: r.URL.Query().Get("u")}, stream.Resume{})
	}))
	t.Cleanup(hs.Close)
	streams := make([]*wire.Stream, n)
	for i := range streams {
		s, err := wire.Open(context.Background(), http.DefaultClient, fmt.Sprintf("%s?u=u%d", hs.URL, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		next(t, s) // connected
		streams[i] = s
	}
	testkit.Eventually(t, 10*time.Second, "every stream subscribed", func() bool { return h.Len() == n })
	return h, srv, streams
}
