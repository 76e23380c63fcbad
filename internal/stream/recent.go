package stream

import (
	"context"
	"log/slog"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
)

// A resume whose point lies inside the hub's window of recent events (see
// package hub, window.go) is answered from memory: the frames every live
// stream got, already serialized, filtered by the live rule, read while
// no event is being published. The stream subscribed before, so every
// event after the window's last seq reaches its queue, and live passes
// only frames above that seq: no gap, no repeat, no query.
//
// Not from memory, and so from the table as before: a resume point older
// than the window (a laptop waking after a night), one the window cannot
// vouch for (the feed has not started, or the client is ahead of this
// node), and an opening whose inbox read failed (the user's mutes are not
// known, and the table's replay applies them itself).
//
// Nor a resume point before the stream's truncation point (retention
// deleted what follows it): the table's replay says so first, and leaves
// out what is gone, which the window may still hold.

// beginFromMemory opens a stream whose resume point the window holds with
// no turn of its own at the database: its user's mutes come in a batch
// (mutes.go), its replay from the window, its unread count afterwards
// (unread.go). done is false, with nothing written, when the stream must
// open the ordinary way: the mutes could not be read, or the window moved
// past the resume point meanwhile.
func (s *Server) beginFromMemory(ctx context.Context, wr *writer, sub *hub.Subscriber, resume Resume, log *slog.Logger) (last int64, ok, done bool) {
	muted, truncatedBefore, holes, err := s.loadMutes(ctx, sub)
	if err != nil {
		if sub.Reason() != "" || ctx.Err() != nil {
			return 0, sub.Reason() != "", true // closed while waiting: live says why
		}
		return 0, false, false
	}
	if resume.Seq < truncatedBefore { // the table's replay says so first
		return 0, false, false
	}
	if _, lost := holes.Lost(resume.Seq); lost { // so does it for a lost history
		return 0, false, false
	}
	sub.SetMuted(muted)
	recent, through, fromMemory := s.hub.Since(sub, resume.Seq, nil)
	if !fromMemory {
		return 0, false, false
	}
	s.resumed(true)
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpeningTimeout)
	defer cancel()
	deadline, _ := octx.Deadline()
	wr.limit = deadline
	defer func() { wr.limit = time.Time{} }()
	if err := s.writeConnected(wr, sub, s.connectedInfo(sub, resume)); err != nil {
		return 0, s.openingFailed(octx, sub, deadline, err, log), true
	}
	if err := s.writeRecent(wr, sub, recent); err != nil {
		return 0, s.openingFailed(octx, sub, deadline, err, log), true
	}
	go s.countLater(ctx, sub, log) // ends with the stream
	return through, true, true
}

// writeRecent writes frames, a replay from the window, in batches of about
// 32 KiB, recording them as replayed.
func (s *Server) writeRecent(wr *writer, sub *hub.Subscriber, frames []hub.Frame) error {
	events := 0
	for _, f := range frames {
		wr.add(f.Data)
		events++
		if wr.pending >= 32<<10 {
			if err := s.flushReplay(wr, sub, events); err != nil {
				return err
			}
			events = 0
		}
	}
	return s.flushReplay(wr, sub, events)
}

// resumed tells the observer where a resume was answered from.
func (s *Server) resumed(fromMemory bool) {
	if s.cfg.Observer.Resumed == nil {
		return
	}
	if fromMemory {
		s.cfg.Observer.Resumed(ResumeFromMemory)
		return
	}
	s.cfg.Observer.Resumed(ResumeFromDatabase)
}

// Where a resume was answered from (Observer.Resumed; the label of
// notifyd_stream_resumes_total).
const (
	ResumeFromMemory   = "memory"
	ResumeFromDatabase = "database"
)
