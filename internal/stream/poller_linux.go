package stream

import (
	"sync"
	"syscall"

	"github.com/notifyd/notifyd/internal/hub"
)

// poller watches the connections of parked streams (park.go) with an epoll
// instance of its own, in one goroutine, and wakes a stream whose client's
// side becomes readable: the client left (end of file, reset) or sent
// bytes. Each registration is one-shot, re-armed once the stream has read
// what there was. The Go runtime's own poller watches the same
// descriptors for the streams' writes; an epoll set may hold a descriptor
// that another one holds too.
//
// The goroutine runs while at least one stream is parked: the first
// registration starts it (with a new epoll instance), the last one gone
// stops it, so a server without streams holds no goroutine or descriptor.
type poller struct {
	mu      sync.Mutex
	set     *epollSet // nil while no stream is parked
	next    uint64
	streams map[uint64]*parkedStream
}

// epollSet is one run of the poller's goroutine: its epoll instance and the
// pipe that tells it to stop.
type epollSet struct {
	epfd       int
	stop, wake int // the pipe's ends: a byte on wake ends the goroutine
}

// watched is a parked stream's registration.
type watched struct {
	set   *epollSet
	token uint64
	fd    int
}

// watchEvent is a registration's event: one-shot readiness to read or
// the peer's hang-up, with the stream's token as its data (token 0 is the
// stop pipe's).
func watchEvent(token uint64) syscall.EpollEvent {
	return syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd: int32(token), Pad: int32(token >> 32)}
}

// tokenOf is the token watchEvent put in ev.
func tokenOf(ev syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// watch registers p's connection; false when it cannot be watched.
func (pl *poller) watch(p *parkedStream) bool {
	fd := -1
	if err := p.raw.Control(func(d uintptr) { fd = int(d) }); err != nil || fd < 0 {
		return false
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.set == nil {
		set, err := newEpollSet()
		if err != nil {
			return false
		}
		pl.set = set
		pl.streams = make(map[uint64]*parkedStream)
		go pl.loop(set)
	}
	pl.next++
	token := pl.next
	ev := watchEvent(token)
	if err := syscall.EpollCtl(pl.set.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		pl.stopIfIdle()
		return false
	}
	p.watch = watched{set: pl.set, token: token, fd: fd}
	pl.streams[token] = p
	return true
}

// rearm watches p's connection again after its one-shot event. The
// stream's goroutine calls it; the connection is still open.
func (pl *poller) rearm(p *parkedStream) {
	pl.mu.Lock()
	var err error = syscall.EBADF // p's set was abandoned: its descriptor may be another's now
	if p.watch.set == pl.set {
		ev := watchEvent(p.watch.token)
		err = syscall.EpollCtl(p.watch.set.epfd, syscall.EPOLL_CTL_MOD, p.watch.fd, &ev)
	}
	pl.mu.Unlock()
	if err != nil {
		// Unwatched, the stream would not learn that its client left
		// until a write failed: end it, and the client reconnects.
		p.sub.Close(hub.ReasonClosed)
	}
}

// forget removes p's registration, before its connection is closed (a
// closed descriptor's number may be reused at once).
func (pl *poller) forget(p *parkedStream) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if p.watch.set == nil {
		return
	}
	if p.watch.set == pl.set { // not an abandoned set, whose descriptor is closed
		_ = syscall.EpollCtl(p.watch.set.epfd, syscall.EPOLL_CTL_DEL, p.watch.fd, nil)
		delete(pl.streams, p.watch.token)
		pl.stopIfIdle()
	}
	p.watch.set = nil
}

// abandon ends a run whose epoll wait failed, which it should never do
// (EBADF, EFAULT, EINVAL): the set can no longer tell its streams that
// their clients left, so they end (their clients reconnect, and the new
// streams are watched by a new set), and the set stops being the poller's
// before the loop closes its descriptors, so nothing uses their numbers
// once the system hands them out again.
func (pl *poller) abandon(set *epollSet) {
	pl.mu.Lock()
	var ended []*parkedStream
	if pl.set == set {
		for _, p := range pl.streams {
			ended = append(ended, p)
		}
		pl.set, pl.streams = nil, nil
	}
	pl.mu.Unlock()
	for _, p := range ended {
		p.sub.Close(hub.ReasonClosed)
	}
}

// stopIfIdle stops the goroutine when no stream is parked. pl.mu is held.
func (pl *poller) stopIfIdle() {
	if len(pl.streams) > 0 || pl.set == nil {
		return
	}
	_, _ = syscall.Write(pl.set.wake, []byte{0})
	pl.set = nil
	pl.streams = nil
}

func newEpollSet() (*epollSet, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // token 0: no stream's
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(pipe[0])
		syscall.Close(pipe[1])
		return nil, err
	}
	return &epollSet{epfd: epfd, stop: pipe[0], wake: pipe[1]}, nil
}

// loop waits for events on set until its pipe says stop, then closes it.
func (pl *poller) loop(set *epollSet) {
	defer func() {
		syscall.Close(set.epfd)
		syscall.Close(set.stop)
		syscall.Close(set.wake)
	}()
	events := make([]syscall.EpollEvent, 128)
	woken := make([]*parkedStream, 0, len(events))
	for {
		n, err := syscall.EpollWait(set.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			pl.abandon(set)
			return
		}
		pl.mu.Lock()
		woken = woken[:0]
		for _, ev := range events[:n] {
			token := tokenOf(ev)
			if token == 0 {
				pl.mu.Unlock()
				return
			}
			if p := pl.streams[token]; p != nil && p.watch.set == set {
				woken = append(woken, p)
			}
		}
		pl.mu.Unlock()
		for _, p := range woken {
			p.clientMoved()
		}
		clear(woken) // hold no ended stream until the next event
	}
}
