package stream

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/wire"
)

// replay is a resume's catch-up from the table. It is read a page at a time,
// each page during a turn at the database (see turn.go), and written to the
// client between turns. The stream subscribed to the hub before the first
// page was read, and live frames pass only above the last seq replayed (see
// live), so the replay and the live feed meet with no gap and no repeat
// however the pages and the writes are spread in time.
type replay struct {
	after  int64  // the last seq read, or the resume point
	status []byte // a status frame to send first (truncated, ahead), or nil
	page   []notify.Notification
	done   bool // no page after this one
	// fence is the store's read fence, taken after the stream subscribed:
	// a replica that has replayed past it holds every notification the
	// feed handed to the hub before, so it may read the pages.
	fence postgres.Fence
}

// startReplay reads the first page after `after`, and the stream head
// unless the opening read it already (known). The caller holds a turn.
func (s *Server) startReplay(ctx context.Context, id notify.Identity, resume Resume, known *postgres.Head) (*replay, error) {
	after := resume.Seq
	var head postgres.Head
	if known != nil {
		head = *known
	} else {
		var err error
		if head, err = s.store.Head(ctx); err != nil {
			return nil, fmt.Errorf("read the stream head: %w", err)
		}
	}
	rp := &replay{after: after, fence: s.store.ReadFence()}
	now := time.Now()
	if hole, lost := head.Holes.Lost(after); lost {
		// The resume point was numbered on a history this database does not
		// have (it is a restored copy or a promoted replica): the client may
		// have seen notifications that are gone. It is told, then gets
		// everything after the last seq this database kept before the new
		// history, which is the same as everything after its own point:
		// nothing was numbered in between.
		rp.status = wire.StatusEvent(now, wire.Status{Replay: wire.ReplayLost, ResumeFrom: new(after),
			LastSeq: new(hole.After), NextSeq: new(hole.First)})
		rp.after = hole.After
		return rp, s.readPage(ctx, id, rp)
	}
	switch {
	case after < head.TruncatedBefore:
		rp.status = wire.StatusEvent(now, wire.Status{Replay: wire.ReplayTruncated, ResumeFrom: new(after),
			OldestAvailable: new(head.TruncatedBefore + 1)})
	case after > head.LastSeq:
		// The client is ahead of this database (it was reset or restored):
		// it gets everything after the database's position when the stream
		// subscribed, which the status names (lastSeq: what the client
		// should take as its position). The feed's position was read just
		// before subscribing: what the feed handed to the hub after it is
		// in the subscriber's queue or (handed over before the subscription)
		// replayed from here, and live frames pass above what the replay
		// wrote. Starting at the head read now instead would drop what was
		// published while the stream was opening.
		from := head.LastSeq
		if resume.live >= 0 && resume.live < from {
			from = resume.live
		}
		rp.status = wire.StatusEvent(now, wire.Status{Replay: wire.ReplayAhead, ResumeFrom: new(after), LastSeq: new(from)})
		rp.after = from
		if from == head.LastSeq {
			rp.done = true
			return rp, nil
		}
	}
	return rp, s.readPage(ctx, id, rp)
}

// readPage reads the page after rp.after. The caller holds a turn.
func (s *Server) readPage(ctx context.Context, id notify.Identity, rp *replay) error {
	ns, err := s.store.ReplayAt(ctx, rp.fence, id, rp.after, math.MaxInt64, s.cfg.ReplayPage)
	if err != nil {
		return fmt.Errorf("replay after %d: %w", rp.after, err)
	}
	rp.page, rp.done = ns, len(ns) < s.cfg.ReplayPage
	return nil
}

// writeReplay writes rp (its first page read already) and the pages after
// it, taking a turn for each read, and returns the last seq written: live
// frames at or below it are not sent again. On errClosed (the subscriber
// was closed between pages) everything up to the seq returned was written.
func (s *Server) writeReplay(ctx context.Context, wr *writer, sub *hub.Subscriber, rp *replay) (int64, error) {
	if rp.status != nil {
		wr.add(rp.status)
	}
	events := 0
	for {
		for _, n := range rp.page {
			wr.add(wire.NotificationEvent(n))
			rp.after = n.Seq
			events++
			if wr.pending >= 32<<10 {
				if err := s.flushReplay(wr, sub, events); err != nil {
					return 0, err
				}
				events = 0
			}
		}
		if rp.done {
			break
		}
		// The client gets what is read while the stream waits for a turn.
		if err := s.flushReplay(wr, sub, events); err != nil {
			return 0, err
		}
		events = 0
		if err := s.takeTurn(ctx, sub); err != nil {
			return rp.after, err
		}
		err := s.readPage(ctx, sub.Identity(), rp)
		s.endTurn()
		if err != nil {
			return 0, err
		}
	}
	return rp.after, s.flushReplay(wr, sub, events)
}

// flushReplay sends what is batched, which holds `events` replayed
// notifications, and records them.
func (s *Server) flushReplay(wr *writer, sub *hub.Subscriber, events int) error {
	if err := wr.flush(); err != nil {
		return err
	}
	sub.Wrote(time.Now(), events)
	if s.cfg.Observer.Replayed != nil && events > 0 {
		s.cfg.Observer.Replayed(events)
	}
	return nil
}
