package stream

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
)

// Why drain: a node that stops closes its streams, and each client comes
// back after its own random delay, so the next node is not stampeded. But
// every notification committed while a client waits to come back is
// delivered only when it has: in a rolling restart that wait is the latency
// of ~40% of all deliveries. Drain spreads the closes instead: each stream
// stays live on this node until its own moment, then is told to reconnect
// at once. The next nodes see the same spread of arrivals, and no client is
// away for longer than its reconnect takes.
//
// How widely: the other nodes open the returning streams on top of their
// live work, and openings they cannot keep up with queue; a queued stream
// misses its notifications until its turn (a rolling restart of 3 nodes
// under 1,000 notifications/s on 2 cores: 3,000-7,000 streams closed within
// 3 s, re-opened at ~500 a second, p99 19 s). So the closes go no faster
// than DrainRate: n streams take n/DrainRate, and at least ReconnectSpread.
// Streams wait for their moment live, so a longer drain costs the stop's
// duration, not latency; it ends before the stop's deadline all the same,
// leaving the rest of the shutdown its share.
//
// The process must keep its feed running while it drains (stop accepting
// new streams first, e.g. by failing readiness or closing the listener),
// then stop as before; Run's own close at the end finds nothing left.

// Drain closes every stream at its own moment within the drain window
// (drainWindow), each told to reconnect immediately (a closing status with
// reconnectAfter 0), and returns when all are closed or ctx ends. The
// moments are one per slot of an even division of the window, in a random
// order, each at a random point of its slot: the rate holds, and no stream
// always goes first. Streams that open while it runs are closed at its end.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	subs := s.hub.Subscribers()
	moments := drainMoments(len(subs), s.cfg.drainWindow(len(subs), drainBudget(ctx)))
	order := rand.Perm(len(subs))
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for k, i := range order {
		if wait := moments[k] - time.Since(start); wait > 0 {
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

// drainMoments are n moments within window, in increasing order, one at a
// random point of each slot of an even division of it: the k-th close of a
// drain happens at the k-th.
func drainMoments(n int, window time.Duration) []time.Duration {
	moments := make([]time.Duration, n)
	for k := range moments {
		moments[k] = time.Duration((float64(k) + rand.Float64()) * float64(window) / float64(n))
	}
	return moments
}

// drainBudget is how long Drain may spread its closes over: what is left
// until ctx's deadline less the rest of the shutdown's share
// (drainReserve); negative when ctx has no deadline.
func drainBudget(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return -1
	}
	left := time.Until(deadline)
	return max(0, left-min(drainReserve, left/5))
}

// drainReserve is what Drain leaves of the stop's time for the rest of the
// shutdown (the HTTP server's, the workers', the pools'), or a fifth of it
// when that is less.
const drainReserve = 2 * time.Second

// drainWindow is how long Drain spreads n streams' closes over: long enough
// to hand them back at DrainRate, at least ReconnectSpread, and at most
// budget (negative: no bound).
func (c Config) drainWindow(n int, budget time.Duration) time.Duration {
	w := max(c.ReconnectSpread, time.Duration(float64(n)/float64(c.DrainRate)*float64(time.Second)))
	if budget >= 0 {
		w = min(w, budget)
	}
	return w
}
