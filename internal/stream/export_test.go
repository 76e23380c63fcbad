package stream

import (
	"context"
	"time"
)

// HoldTurns takes every turn at the database, as a reconnect storm's
// openings do, until release is called.
func HoldTurns(s *Server) (release func()) {
	n := cap(s.opening)
	for range n {
		s.opening <- struct{}{}
	}
	return func() {
		for range n {
			<-s.opening
		}
	}
}

// MutesWaiting is how many streams wait in the batch of mute reads that is
// gathering.
func MutesWaiting(s *Server) int {
	s.mutes.mu.Lock()
	defer s.mutes.mu.Unlock()
	if s.mutes.next == nil {
		return 0
	}
	return len(s.mutes.next.users)
}

// DrainWindow is how long Drain spreads n streams' closes with c (defaulted)
// and budget (negative: no deadline).
func DrainWindow(c Config, n int, budget time.Duration) time.Duration {
	return c.WithDefaults().drainWindow(n, budget)
}

// DrainMoments are the moments Drain closes n streams at, over window.
func DrainMoments(n int, window time.Duration) []time.Duration { return drainMoments(n, window) }

// DrainBudget is how long Drain may spread its closes over with ctx.
func DrainBudget(ctx context.Context) time.Duration { return drainBudget(ctx) }
