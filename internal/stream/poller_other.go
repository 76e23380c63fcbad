//go:build !linux

package stream

import (
	"net"

	"github.com/notifyd/notifyd/internal/hub"
)

// poller stands in for the Linux poller (poller_linux.go): elsewhere no
// stream is parked, and liveConn serves each with a goroutine.
type poller struct{}

// writerPool stands in for the Linux writers (park.go).
type writerPool struct{}

func (s *Server) park(*writer, net.Conn, *hub.Subscriber, int64, func()) bool { return false }
