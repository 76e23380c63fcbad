package stream

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
