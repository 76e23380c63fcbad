package stream

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
)

// Why drain: a node that stops closes its streams, and each client comes
// back after its own random delay (ReconnectSpread), so the next node is
// not stampeded. But every notification committed while a client waits to
// come back is delivered only when it has: in a rolling restart that wait,
// up to ReconnectSpread, is the latency of ~40% of all deliveries. Drain
// spreads the closes instead: each stream stays live on this node until
// its own moment in [0, ReconnectSpread), then is told to reconnect at
// once. The next node sees the same spread of arrivals, and no client is
// ever away for longer than its reconnect takes.
//
// The process must keep its feed running while it drains (stop accepting
// new streams first, e.g. by failing readiness or closing the listener),
// then stop as before; Run's own close at the end finds nothing left.

// Drain closes every stream at its own random moment within
// ReconnectSpread, each told to reconnect immediately (a closing status
// with reconnectAfter 0), and returns when all are closed or ctx ends.
// Streams that open while it runs are closed at its end.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	subs := s.hub.Subscribers()
	at := make([]time.Duration, len(subs))
	for i := range at {
		at[i] = time.Duration(rand.Int64N(int64(s.cfg.ReconnectSpread)))
	}
	order := make([]int, len(subs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(at[a] - at[b]) })
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for _, i := range order {
		if wait := at[i] - time.Since(start); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		subs[i].Close(hub.ReasonShutdown)
	}
	s.hub.CloseWhere(func(notify.Identity) bool { return true }, hub.ReasonShutdown)
}
