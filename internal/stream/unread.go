package stream

import (
	"context"
	"log/slog"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/wire"
)

// Why a resumed stream gets its unread count later: the count is most of
// what an opening costs the database (it reads the user's audience above
// the read watermark, ~1,000 buffers for a dense user at 10 million rows),
// and a client that resumes already holds a count it kept up to date. So a
// stream resumed from the hub's window that would have to wait for a turn
// (every one, with Config.DeferUnreadCount) opens with a connected message
// without unreadCount (the browser client keeps its count) and gets a
// status message with data.unreadCount, data.hasMore and
// data.countedThrough (the last seq the count covers) once the count is
// read. Counts take turns of their own (Server.counting), so they never
// hold up openings: in a reconnect storm the streams get their
// notifications first and their counts as the database has time.

// countLater reads the user's unread count when a counting turn comes and
// sends it to sub as a status message. It ends with ctx or sub.
func (s *Server) countLater(ctx context.Context, sub *hub.Subscriber, log *slog.Logger) {
	select {
	case s.counting <- struct{}{}:
	case <-ctx.Done():
		return
	case <-sub.Done():
		return
	}
	defer func() { <-s.counting }()
	qctx, cancel := context.WithTimeout(ctx, s.cfg.OpeningTimeout)
	defer cancel()
	u, err := s.inbox.Unread(qctx, sub.Identity())
	if err != nil {
		if ctx.Err() == nil {
			log.WarnContext(ctx, "unread count for a resumed stream not sent; the client keeps its own",
				"stream_id", sub.ID(), "user_id", sub.Identity().UserID, "err", err)
		}
		return
	}
	sub.Send(hub.Frame{Data: wire.StatusEvent(time.Now(), wire.Status{UnreadCount: new(u.Count), HasMore: new(u.HasMore),
		CountedThrough: new(u.Through)})})
}
