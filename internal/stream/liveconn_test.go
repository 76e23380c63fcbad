package stream_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestDetachedStreamIsOneGoroutine: an open detached stream holds one
// goroutine of the server's (its stacks were half an idle stream's memory),
// and that goroutine still writes what the hub queues.
func TestDetachedStreamIsOneGoroutine(t *testing.T) {
	h, _, hs := quietServer(t, notify.Identity{UserID: "bob"})
	const n = 20
	// The client's goroutines are counted once, with one stream open;
	// each further stream adds the client's and the server's.
	first, _ := open(t, hs.URL)
	defer first.Close()
	next(t, first)
	testkit.Eventually(t, 10*time.Second, "the first stream is subscribed", func() bool { return h.Len() == 1 })
	settle := func() int {
		time.Sleep(100 * time.Millisecond) // handlers and net/http's goroutines end
		return runtime.NumGoroutine()
	}
	before := settle()
	streams := make([]*wire.Stream, n)
	for i := range streams {
		streams[i], _ = open(t, hs.URL)
		defer streams[i].Close()
		next(t, streams[i])
	}
	testkit.Eventually(t, 10*time.Second, "every stream is subscribed", func() bool { return h.Len() == n+1 })
	perStream := float64(settle()-before) / n
	t.Logf("%.2f goroutines a stream, client and server", perStream)
	// The client side of a stream holds net/http's read and write loops;
	// the server side one goroutine. Two server goroutines would make 4.
	if perStream > 3.5 {
		t.Fatalf("%.1f goroutines a stream (client and server), want 3: a detached stream holds one", perStream)
	}
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.Now())})
	for _, s := range streams {
		if ev := next(t, s); !strings.Contains(string(ev.Data), `"type":"heartbeat"`) {
			t.Fatalf("event %q, want a heartbeat", ev.Data)
		}
	}
}

// TestDetachedStreamExpires: a detached stream whose credentials expire is
// told so and ends, with nothing else to wake it (the expiry is its read's
// deadline).
func TestDetachedStreamExpires(t *testing.T) {
	expires := time.Now().Add(time.Second)
	h, _, hs := quietServer(t, notify.Identity{UserID: "carol", ExpiresAt: expires})
	s, _ := open(t, hs.URL)
	defer s.Close()
	next(t, s)
	if ev := next(t, s); !strings.Contains(string(ev.Data), `"closing":"expired"`) {
		t.Fatalf("event %q, want the expired status", ev.Data)
	}
	if time.Now().Before(expires) {
		t.Fatal("the stream was told its credentials expired before they did")
	}
	testkit.Eventually(t, 10*time.Second, "the stream is unsubscribed", func() bool { return h.Len() == 0 })
}
