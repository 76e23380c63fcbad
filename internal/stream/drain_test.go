package stream_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
	h := hub.New(hub.Config{})
	srv, err := stream.NewServer(h, nil, stream.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(r.Context(), w, notify.Identity{UserID: r.URL.Query().Get("u")}, stream.Resume{})
	}))
	defer hs.Close()
	const n = 20
	streams := make([]*wire.Stream, n)
	for i := range streams {
		s, err := wire.Open(context.Background(), http.DefaultClient, fmt.Sprintf("%s?u=u%d", hs.URL, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		next(t, s) // connected
		streams[i] = s
	}
	testkit.Eventually(t, 10*time.Second, "the condition", func() bool { return h.Len() == n })
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
