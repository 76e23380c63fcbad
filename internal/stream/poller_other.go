//go:build !linux

package stream

// poller is the Linux poller's stand-in (poller_linux.go): elsewhere no
// stream is parked, and liveConn serves each with a goroutine.
type poller struct{}

type watched struct{}

func (*poller) watch(*parkedStream) bool { return false }
func (*poller) rearm(*parkedStream)      {}
func (*poller) forget(*parkedStream)     {}
