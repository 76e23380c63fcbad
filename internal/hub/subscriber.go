package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
)

// Reason says why a subscriber was closed.
type Reason string

// Close reasons; they are also the label of the streams-closed metric.
const (
	ReasonClosed   Reason = "closed"   // the stream ended (client left, write failed)
	ReasonSlow     Reason = "slow"     // its queue overflowed
	ReasonTimeout  Reason = "timeout"  // no successful write for the connection timeout
	ReasonExpired  Reason = "expired"  // its credentials expired
	ReasonLogout   Reason = "logout"   // its session ended
	ReasonShutdown Reason = "shutdown" // the server is stopping
	// ReasonOpeningTimeout: its opening (database reads, connected message,
	// replay) outlasted the stream's opening timeout.
	ReasonOpeningTimeout Reason = "opening_timeout"
	// ReasonSessionChanged: its session's user or roles changed (a refresh
	// read new roles); the client reconnects with the same cookie and gets
	// the new roles.
	ReasonSessionChanged Reason = "session_changed"
)

// Subscriber is one stream's mailbox: a bounded queue of frames that the
// stream's goroutine drains.
type Subscriber struct {
	id         uint64
	identity   notify.Identity
	opened     time.Time
	maxPending int
	lastQueued int64 // owned by the hub's publisher
	lastWrite  atomic.Int64
	written    atomic.Int64
	muted      atomic.Pointer[map[string]struct{}]

	mu      sync.Mutex
	pending []Frame
	reason  Reason
	ready   chan struct{}
	done    chan struct{}
	abort   func()
	wake    func()
}

func newSubscriber(id uint64, identity notify.Identity, maxPending int) *Subscriber {
	s := &Subscriber{id: id, identity: identity, opened: time.Now(), maxPending: maxPending,
		ready: make(chan struct{}, 1), done: make(chan struct{})}
	s.lastWrite.Store(s.opened.UnixNano())
	return s
}

// SetMuted replaces the modules whose non-critical notifications this
// subscriber does not receive.
func (s *Subscriber) SetMuted(modules []string) {
	if len(modules) == 0 {
		s.muted.Store(nil)
		return
	}
	set := make(map[string]struct{}, len(modules))
	for _, m := range modules {
		set[m] = struct{}{}
	}
	s.muted.Store(&set)
}

// accepts is the live rule for an event whose target includes s (the
// hub's indexes resolve notify.Target.Matches): the frame s gets, marked
// with the module whose muting drops it (none for critical), and whether
// s's mutes let it through now (expiry is decided per event by Publish
// and Since). Take applies the mutes again, since they may change while a
// frame waits. Resumes from the window use the same
// rule (Hub.Since), so memory and live never disagree.
func (s *Subscriber) accepts(ev *Event) (Frame, bool) {
	f := ev.Frame
	if ev.Severity != notify.SeverityCritical {
		f.mutable = ev.Module
	}
	return f, !s.mutes(f.mutable)
}

func (s *Subscriber) mutes(module string) bool {
	set := s.muted.Load()
	if set == nil || module == "" {
		return false
	}
	_, ok := (*set)[module]
	return ok
}

// ID is unique within the process.
func (s *Subscriber) ID() uint64 { return s.id }

// Identity is who the subscriber is.
func (s *Subscriber) Identity() notify.Identity { return s.identity }

// enqueue adds f unless the subscriber is closed; a full queue closes it.
func (s *Subscriber) enqueue(f Frame) bool {
	s.mu.Lock()
	if s.reason != "" {
		s.mu.Unlock()
		return true
	}
	if len(s.pending) >= s.maxPending {
		s.mu.Unlock()
		s.Close(ReasonSlow)
		return false
	}
	s.pending = append(s.pending, f)
	wake := s.wake
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	if wake != nil {
		wake()
	}
	return true
}

// Send queues f, a frame without a seq for this stream alone (a status
// message). It reports false when the queue was full and s is closed.
func (s *Subscriber) Send(f Frame) bool { return s.enqueue(f) }

// Ready is signalled when frames are waiting.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Done is closed when the subscriber is closed.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// Take moves the waiting frames into buf (reusing its storage) and returns
// it, leaving out those of modules muted since they were queued: a stream
// subscribes before it loads its mutes (so a change announced meanwhile is
// not missed), and what arrived in between is filtered here.
func (s *Subscriber) Take(buf []Frame) []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = buf[:0]
	for _, f := range s.pending {
		if !s.mutes(f.mutable) {
			buf = append(buf, f)
		}
	}
	clear(s.pending)
	s.pending = s.pending[:0]
	if cap(s.pending) > 64 { // a burst is over: give its memory back
		s.pending = nil
	}
	return buf
}

// OnAbort registers fn to interrupt the stream's writer when the subscriber
// is closed for being slow or stale: its writer may be blocked on a client
// that stopped reading, and should not wait for its write deadline.
func (s *Subscriber) OnAbort(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.abort = fn
}

// OnWake registers fn to be called, from the goroutine that queues or
// closes, whenever a frame is queued and when the subscriber is closed: for
// a stream's goroutine that waits on something other than Ready and Done
// (a read of its client's connection, which fn interrupts). fn must not
// block.
func (s *Subscriber) OnWake(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wake = fn
}

// Close closes the subscriber with reason; it reports whether this call closed it.
func (s *Subscriber) Close(reason Reason) bool {
	s.mu.Lock()
	if s.reason != "" {
		s.mu.Unlock()
		return false
	}
	s.reason = reason
	s.pending = nil
	close(s.done)
	abort, wake := s.abort, s.wake
	s.mu.Unlock()
	if abort != nil && (reason == ReasonSlow || reason == ReasonTimeout) {
		abort()
	}
	if wake != nil {
		wake()
	}
	return true
}

// Reason is why the subscriber was closed ("" while open).
func (s *Subscriber) Reason() Reason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// Wrote records a successful write of n events at t.
func (s *Subscriber) Wrote(t time.Time, events int) {
	s.lastWrite.Store(t.UnixNano())
	s.written.Add(int64(events))
}

// LastWrite is when the stream last wrote successfully.
func (s *Subscriber) LastWrite() time.Time { return time.Unix(0, s.lastWrite.Load()) }

// Written is the number of notification events written.
func (s *Subscriber) Written() int64 { return s.written.Load() }

// Info describes a subscriber for the status page.
type Info struct {
	ID        uint64    `json:"id"`
	UserID    string    `json:"userId"`
	Roles     []string  `json:"roles"`
	OpenedAt  time.Time `json:"openedAt"`
	LastWrite time.Time `json:"lastWriteAt"`
	Events    int64     `json:"events"`
}

// Info describes s.
func (s *Subscriber) Info() Info {
	return Info{ID: s.id, UserID: s.identity.UserID, Roles: s.identity.Roles, OpenedAt: s.opened,
		LastWrite: s.LastWrite(), Events: s.Written()}
}
