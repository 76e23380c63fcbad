//go:build linux

package stream

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
)

// Why an idle stream is parked: a detached stream served by a goroutine of
// its own (liveConn) holds that goroutine's stack, 4 KiB once it has
// written and read, for as long as the client stays: more than a quarter
// of an idle stream's memory, and a goroutine to wake for every heartbeat.
// A parked stream has no goroutine while it waits. Two things can need it:
//   - the hub queues a frame or closes the subscriber: its wake (OnWake)
//     starts a goroutine, which writes what is queued and parks the stream
//     again, or ends it;
//   - the client's side of the connection moves (it left, or sent bytes):
//     the server's poller (poller_linux.go), one goroutine that serves all
//     the parked streams, watches their connections and wakes the stream
//     the same way.
//
// At most one goroutine serves a stream at a time: wake starts one only
// when the stream is parked, and tells a running one to look again
// otherwise. The credentials' expiry is a timer that closes the
// subscriber. Where the poller cannot watch a connection (another OS, a
// connection without a descriptor), the stream is served by liveConn.

// The states of a parked stream.
const (
	parkedIdle    int32 = iota // no goroutine; a wake starts one
	parkedRunning              // a goroutine is writing, or about to park it
	parkedAgain                // woken while running: the goroutine looks again before it parks
	parkedEnded                // the stream ended: wakes do nothing
)

type parkedStream struct {
	s      *Server
	wr     *writer
	conn   net.Conn
	raw    syscall.RawConn
	sub    *hub.Subscriber
	end    func() // Serve's: unsubscribe, log, close the connection
	last   int64
	frames []hub.Frame
	expiry *time.Timer
	watch  watched // the poller's registration

	state    atomic.Int32
	readable atomic.Bool // the poller saw the client's side move
}

// park serves a stream that has opened without a goroutine of its own
// while it is idle, and calls end when it ends. It reports false, having
// done nothing, when the connection cannot be watched: the caller then
// serves the stream itself (liveConn).
func (s *Server) park(wr *writer, conn net.Conn, sub *hub.Subscriber, last int64, end func()) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// The opening's watch (watchClient) left a read deadline in the past;
	// the reads here are the poller's, without one.
	if conn.SetReadDeadline(time.Time{}) != nil {
		return false
	}
	p := &parkedStream{s: s, wr: wr, conn: conn, raw: raw, sub: sub, end: end, last: last}
	p.state.Store(parkedRunning) // until the first run below parks it
	if !s.poller.watch(p) {
		return false
	}
	if exp := sub.Identity().ExpiresAt; !exp.IsZero() {
		p.expiry = time.AfterFunc(time.Until(exp), func() { sub.Close(hub.ReasonExpired) })
	}
	sub.OnWake(p.wake)
	// Frames queued (or a close) before OnWake woke nobody: look now.
	go p.run()
	return true
}

// wake makes sure a goroutine looks at the stream: it starts one if the
// stream is parked. It never blocks (the hub calls it while fanning out).
func (p *parkedStream) wake() {
	for {
		switch st := p.state.Load(); st {
		case parkedIdle:
			if p.state.CompareAndSwap(parkedIdle, parkedRunning) {
				go p.run()
				return
			}
		case parkedRunning:
			if p.state.CompareAndSwap(parkedRunning, parkedAgain) {
				return
			}
		default: // parkedAgain, parkedEnded
			return
		}
	}
}

// clientMoved is the poller's wake: the client's side of the connection
// is readable (it left, or sent bytes).
func (p *parkedStream) clientMoved() {
	p.readable.Store(true)
	p.wake()
}

// run serves the stream until it is idle again (and parks it) or ends.
func (p *parkedStream) run() {
	for {
		if !p.step() {
			p.finish()
			return
		}
		if p.state.CompareAndSwap(parkedRunning, parkedIdle) {
			return
		}
		p.state.Store(parkedRunning) // woken meanwhile: look again
	}
}

// step does what a wake asks: it says goodbye and reports false when the
// subscriber was closed or the client left, and otherwise writes what is
// queued.
func (p *parkedStream) step() bool {
	select {
	case <-p.sub.Done():
		p.s.farewell(p.wr, p.sub.Reason())
		return false
	default:
	}
	if p.readable.Swap(false) {
		if p.clientLeft() {
			return false
		}
		p.s.poller.rearm(p)
	}
	p.frames = p.sub.Take(p.frames)
	if p.s.tookFrames != nil {
		p.s.tookFrames(len(p.frames))
	}
	if len(p.frames) > 0 {
		var ok bool
		if p.frames, p.last, ok = p.s.writeFrames(p.wr, p.sub, p.frames, p.last); !ok {
			return false
		}
	}
	return true
}

// clientLeft reads what the client sent, without waiting: a stream has no
// requests, so bytes are dropped, and the end of the connection (or an
// error) means the client left.
func (p *parkedStream) clientLeft() bool {
	var b [64]byte
	for range 16 { // a client that keeps sending is read again at the next wake
		var n int
		var rerr error
		if err := p.raw.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), b[:])
			return true // never wait for more
		}); err != nil {
			return true
		}
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
			return false
		case rerr != nil, n == 0:
			return true
		}
	}
	return false
}

// finish ends the stream: the poller forgets its connection before end
// closes it.
func (p *parkedStream) finish() {
	p.state.Store(parkedEnded)
	p.s.poller.forget(p)
	if p.expiry != nil {
		p.expiry.Stop()
	}
	p.end()
}
