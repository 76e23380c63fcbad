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

// TestDrainBudget: a stop's deadline leaves the drain what is left of it
// less the rest of the shutdown's share (2 s, or a fifth when less).
func TestDrainBudget(t *testing.T) {
	if got := stream.DrainBudget(context.Background()); got >= 0 {
		t.Errorf("no deadline: budget %s, want none (negative)", got)
	}
	for _, c := range []struct{ left, want time.Duration }{
		{500 * time.Millisecond, 400 * time.Millisecond},
		{30 * time.Second, 28 * time.Second},
		{-time.Second, 0},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), c.left)
		got := stream.DrainBudget(ctx)
		cancel()
		// The time between setting the deadline and reading it comes off.
		if got > c.want || got < c.want-50*time.Millisecond {
			t.Errorf("deadline in %s: budget %s, want %s (less the moments since)", c.left, got, c.want)
		}
	}
}

// TestDrainMoments: a drain's closes fall one in each slot of an even
// division of its window, so they keep its rate and end within it (the
// window itself is within the stop's budget: TestDrainWindow).
func TestDrainMoments(t *testing.T) {
	for _, c := range []struct {
		n      int
		window time.Duration
	}{{1, time.Second}, {40, 400 * time.Millisecond}, {7000, 14 * time.Second}, {5, 0}} {
		moments := stream.DrainMoments(c.n, c.window)
		if len(moments) != c.n {
			t.Fatalf("%d streams: %d moments", c.n, len(moments))
		}
		slot := c.window / time.Duration(c.n)
		for k, at := range moments {
			// Float rounding may put a moment a nanosecond either side of
			// its slot's edge.
			if from, to := time.Duration(k)*slot-time.Nanosecond, time.Duration(k+1)*slot+time.Nanosecond; at < from || at > to || at > c.window {
				t.Fatalf("%d streams over %s: close %d at %s, want within [%s, %s] and the window", c.n, c.window, k, at, from, to)
			}
		}
	}
}

// TestDrainPacesTheCloses: Drain hands its streams back spread over its
// window, each at its own moment, not all at once; with a deadline, over
// the shorter window its budget leaves. (That the closes end within the
// window is TestDrainMoments's: the clients' reads of them, timed here,
// can come late on a loaded machine, so only the spread's lower bound is
// checked.)
func TestDrainPacesTheCloses(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	for _, c := range []struct {
		name     string
		deadline time.Duration // 0: none
		min      time.Duration // the drain's span, first close to last, at least
	}{
		// 40 streams at 40 a second: one moment in each 25 ms slot of 1 s.
		{"rate", 0, 800 * time.Millisecond},
		// A stop with 500 ms left drains within 400 ms (a fifth is kept
		// for the rest of the shutdown).
		{"deadline", 500 * time.Millisecond, 150 * time.Millisecond},
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
			if span := last.Sub(first); span < c.min {
				t.Errorf("%d streams closed over %s, want at least %s", n, span, c.min)
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
