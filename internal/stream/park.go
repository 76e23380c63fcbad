//go:build linux

package stream

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
// At most one goroutine serves a stream at a time: wake hands it to one
// only when the stream is parked, and tells a running one to look again
// otherwise. The credentials' expiry is a timer that closes the
// subscriber. Where the poller cannot watch a connection (another OS, a
// connection without a descriptor), the stream is served by liveConn.
//
// Why a wake goes to the server's writers first, not to a goroutine of the
// stream's own: a heartbeat wakes every stream at once. A goroutine each
// (8,000 at once for 8,000 streams) held a stack each until they had all
// run, and left ~15 MiB of stacks for the next collections: RSS went from
// 10.2 KiB a stream after a burst of openings to 12.5 KiB after a minute
// of heartbeats. The writers (writerPool, a few goroutines per CPU) take
// woken streams in turn and write what is queued in one attempt that
// does not wait for the client (writer.now): a socket with room, nearly
// always, takes it whole. Anything else goes to a goroutine of the
// stream's own (run), as every wake did before: the rest of a batch the
// socket did not take, a client that moved, a close, a write error.

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
	now    nowWrite

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
	// Nor a write deadline between flushes (see writer.now).
	if conn.SetWriteDeadline(time.Time{}) != nil {
		return false
	}
	p := &parkedStream{s: s, wr: wr, conn: conn, raw: raw, sub: sub, end: end, last: last}
	p.state.Store(parkedRunning) // until the first run below parks it
	if !s.poller.watch(p) {
		return false
	}
	p.now.attempt = p.now.write
	wr.now = p.writeNow
	if exp := sub.Identity().ExpiresAt; !exp.IsZero() {
		p.expiry = time.AfterFunc(time.Until(exp), func() { sub.Close(hub.ReasonExpired) })
	}
	sub.OnWake(p.wake)
	// Frames queued (or a close) before OnWake woke nobody: look now.
	go p.run()
	return true
}

// wake makes sure a goroutine looks at the stream: it hands the stream to
// the server's writers if it is parked. It never blocks (the hub calls it
// while fanning out).
func (p *parkedStream) wake() {
	for {
		switch st := p.state.Load(); st {
		case parkedIdle:
			if p.state.CompareAndSwap(parkedIdle, parkedRunning) {
				p.s.writers.push(p)
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

// quick serves a wake on one of the server's writers: it writes what is
// queued without waiting for the client and parks the stream again, or
// hands it to run for anything more.
func (p *parkedStream) quick() {
	select {
	case <-p.sub.Done():
		go p.run()
		return
	default:
	}
	if p.readable.Load() {
		go p.run()
		return
	}
	p.frames = p.sub.Take(p.frames)
	if p.s.tookFrames != nil {
		p.s.tookFrames(len(p.frames))
	}
	if len(p.frames) > 0 {
		var ok bool
		p.wr.noWait = true
		p.frames, p.last, ok = p.s.writeFrames(p.wr, p.sub, p.frames, p.last)
		p.wr.noWait = false
		switch {
		case !ok:
			go p.finish()
			return
		case p.wr.unfinished():
			go p.run()
			return
		}
	}
	if !p.state.CompareAndSwap(parkedRunning, parkedIdle) {
		// Woken meanwhile: its turn comes again after the streams already
		// waiting, so a stream sent to without pause does not keep a
		// writer from the others.
		p.state.Store(parkedRunning)
		p.s.writers.push(p)
	}
}

// writeNow is the stream's writer.now: one writev that does not wait.
// Its attempt is a function made once per stream, with its arguments and
// results in the stream: a closure made per write would be garbage for
// every heartbeat of every stream.
func (p *parkedStream) writeNow(bufs net.Buffers) (int, error) {
	p.now.bufs = bufs
	err := p.raw.Write(p.now.attempt)
	n, werr := p.now.n, p.now.err
	p.now.bufs, p.now.err = nil, nil
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN || werr == unix.EINTR:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}

// nowWrite is writeNow's attempt and what it works on.
type nowWrite struct {
	attempt func(fd uintptr) bool
	bufs    net.Buffers
	n       int
	err     error
}

func (w *nowWrite) write(fd uintptr) bool {
	w.n, w.err = unix.Writev(int(fd), w.bufs)
	return true // one attempt: never wait for the socket
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
	if p.wr.unfinished() { // what the socket did not take on a writer (quick)
		if p.wr.flush() != nil {
			return false
		}
	}
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

// writersPerCPU bounds the server's writers. Few enough that a heartbeat
// to 8,000 streams holds 64 stacks (on 2 CPUs), not 8,000; enough that
// while thousands of streams open at once (a reconnect storm) the writers
// keep their share of the scheduler's run queue: with two per CPU, the
// storm phase's surviving streams waited twice as long for their
// notifications (p99 2.7–2.9 s against 1.3–1.4 s with a goroutine per
// wake).
const writersPerCPU = 32

// writerPool is the server's writers: goroutines, at most writersPerCPU
// per CPU, that serve the wakes of parked streams in turn (quick). One
// starts for each wake while fewer are running, and each ends when no
// stream waits, so an idle server holds none.
type writerPool struct {
	mu      sync.Mutex
	queue   []*parkedStream // woken streams; those before head are served
	head    int
	running int
}

// push queues p, which a wake has just marked running, for a writer.
func (w *writerPool) push(p *parkedStream) {
	w.mu.Lock()
	w.queue = append(w.queue, p)
	start := w.running < writersPerCPU*runtime.GOMAXPROCS(0)
	if start {
		w.running++
	}
	w.mu.Unlock()
	if start {
		go w.work()
	}
}

func (w *writerPool) work() {
	for p := w.next(); p != nil; p = w.next() {
		p.quick()
	}
}

// next is the next woken stream, or nil (and the calling writer ends)
// when none waits.
func (w *writerPool) next() *parkedStream {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head == len(w.queue) {
		w.running--
		w.queue, w.head = w.queue[:0], 0
		if cap(w.queue) > 1024 { // a heartbeat to many streams is over
			w.queue = nil
		}
		return nil
	}
	p := w.queue[w.head]
	w.queue[w.head] = nil
	w.head++
	if w.head >= 1024 && w.head*2 >= len(w.queue) { // under steady wakes the queue never empties
		n := copy(w.queue, w.queue[w.head:])
		clear(w.queue[n:])
		w.queue, w.head = w.queue[:n], 0
	}
	return p
}
