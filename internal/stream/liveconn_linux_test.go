package stream_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestStreamWithoutDescriptorServedLive: a connection the poller cannot
// watch (a TLS connection, a wrapped one) is served by a goroutine of its
// own (liveConn) instead of being parked, and writes what the hub queues.
// Its other duties (its client leaving, expiry, Run's end) are tested
// beside the parked stream's (listeners).
func TestStreamWithoutDescriptorServedLive(t *testing.T) {
	h, srv, hs := quietServerOn(t, notify.Identity{UserID: "hana"}, func(l net.Listener) net.Listener { return noDescriptorListener{l} })
	s, _ := open(t, hs.URL)
	defer s.Close()
	next(t, s) // connected
	testkit.Eventually(t, 10*time.Second, "the stream is subscribed", func() bool { return h.Len() == 1 })
	if n := stream.Parked(srv); n != 0 {
		t.Fatalf("%d streams parked, want none: the connection has no descriptor", n)
	}
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.UnixMilli(7))})
	if ev := next(t, s); !strings.Contains(string(ev.Data), `"timestamp":7}`) {
		t.Fatalf("got %s, want the heartbeat", ev.Data)
	}
}
