package stream

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
)

// liveConn is live for a detached stream that cannot be parked (park.go),
// in the stream's one goroutine (see detach.go): it waits in a read of the client's connection, which
// returns when the client leaves, when the credentials expire (the read
// deadline) or when the hub wakes it by moving that deadline to the past
// (a frame was queued, or the subscriber closed). The deadline is put back
// before the goroutine looks at the subscriber, so a wake that comes while
// it writes makes the next read return at once: none is lost.
func (s *Server) liveConn(wr *writer, conn net.Conn, sub *hub.Subscriber, last int64) {
	expiry := sub.Identity().ExpiresAt // zero: none
	sub.OnWake(func() { _ = conn.SetReadDeadline(aLongTimeAgo) })
	var frames []hub.Frame
	var b [64]byte // what the client sends is not read: a stream has no requests
	for {
		if err := conn.SetReadDeadline(expiry); err != nil {
			return
		}
		select {
		case <-sub.Done():
			s.farewell(wr, sub.Reason())
			return
		default:
		}
		if frames = sub.Take(frames); len(frames) > 0 {
			var ok bool
			if frames, last, ok = s.writeFrames(wr, sub, frames, last); !ok {
				return
			}
		}
		if _, err := conn.Read(b[:]); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return // the client left
			}
			if !expiry.IsZero() && !time.Now().Before(expiry) {
				sub.Close(hub.ReasonExpired)
			}
		}
	}
}
