package stream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit"
)

// TestDetachedStreamExpires: a detached stream whose credentials expire is
// told so and ends, with nothing else to wake it (the expiry is a timer
// that closes a parked stream's subscriber, or liveConn's read deadline).
func TestDetachedStreamExpires(t *testing.T) {
	for _, l := range listeners {
		t.Run(l.name, func(t *testing.T) {
			expires := time.Now().Add(time.Second)
			h, _, hs := quietServerOn(t, notify.Identity{UserID: "carol", ExpiresAt: expires}, l.wrap)
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
		})
	}
}
