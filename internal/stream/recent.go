package stream

import "github.com/notifyd/notifyd/internal/hub"

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
// A resume point inside the window gets no "truncated" status even if
// retention deleted rows around it meanwhile: nothing after it is missing.

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
