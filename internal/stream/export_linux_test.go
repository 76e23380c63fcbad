package stream

import "syscall"

// Parked is how many streams the server's poller watches.
func Parked(s *Server) int {
	s.poller.mu.Lock()
	defer s.poller.mu.Unlock()
	return len(s.poller.streams)
}

// PollerRunning says whether the server's poller has a goroutine.
func PollerRunning(s *Server) bool {
	s.poller.mu.Lock()
	defer s.poller.mu.Unlock()
	return s.poller.set != nil
}

// AbandonPoller does what a failed epoll wait does: the poller's current
// set is given up, its streams ended, and its goroutine returns.
func AbandonPoller(s *Server) {
	s.poller.mu.Lock()
	set := s.poller.set
	s.poller.mu.Unlock()
	if set != nil {
		s.poller.abandon(set)
		_, _ = syscall.Write(set.wake, []byte{0})
	}
}

// OnTookFrames has fn called by a parked stream's goroutine each time it
// has taken what was queued (n frames), before it writes them. Set it
// before any stream opens.
func OnTookFrames(s *Server, fn func(n int)) { s.tookFrames = fn }

// WritersPerCPU bounds the server's writers (park.go).
const WritersPerCPU = writersPerCPU
