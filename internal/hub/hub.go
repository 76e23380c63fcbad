// Package hub fans published notifications out to the streams of one process.
//
// Every event is serialized once, by the caller, and the same bytes are queued
// on every matching subscriber. Matching is notify.Target.Matches, resolved
// through indexes by user id and by role so a targeted event touches only its
// recipients.
//
// Slow-consumer policy: each subscriber has a bounded queue (Config.MaxPending
// frames). Publishing never blocks; a subscriber whose queue is full is closed
// with reason "slow" and its stream ends. The client resumes from its
// Last-Event-ID and the stream replays what it missed from the database, so a
// slow client costs a bounded buffer, never unbounded memory, and never delays
// anyone else.
package hub

import (
	"cmp"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
)

// Frame is one serialized SSE event. Seq is the notification's seq, or 0 for
// frames that carry no id (heartbeats, status).
type Frame struct {
	Seq  int64
	Data []byte
	// Created is when the notification was inserted (unix nanoseconds; 0
	// for frames that are not notifications), for latency metrics.
	Created int64
	// mutable is the module whose muting drops this frame ("" when nothing
	// can: not a notification, no module, or critical).
	mutable string
}

// Event is a published notification ready to fan out.
type Event struct {
	Frame
	Target notify.Target
	// Module and Severity decide whether a subscriber that muted the
	// module gets it (critical always comes through).
	Module   string
	Severity notify.Severity
	// ExpiresAt (Unix nanoseconds, 0: never): from then on no subscriber
	// is sent it, live or from the window.
	ExpiresAt int64
}

// expired reports whether ev's ExpiresAt has passed at now: decided once
// per event (Publish, Since), not once per subscriber.
func (ev *Event) expired(now time.Time) bool {
	return ev.ExpiresAt != 0 && now.UnixNano() >= ev.ExpiresAt
}

// Config tunes the hub.
type Config struct {
	// MaxPending is the most frames queued for one subscriber before it is
	// closed as slow. Default 1024.
	MaxPending int
	// MaxSubscribers caps the streams of this process (0: no cap).
	MaxSubscribers int
	// MaxPerUser caps the streams of one user in this process (0: no cap).
	MaxPerUser int
	// Window is how many of the most recently published events the hub
	// keeps, so that a stream resuming from a point among them is answered
	// from memory (see window.go and Since). About 0.5 KiB an event at
	// typical sizes. Default 10,000; negative: no window.
	Window int
	// WindowBytes bounds the window's memory: the oldest events go while
	// their frames (and ~160 bytes each besides) hold more. Default 8 MiB:
	// 10,000 typical notifications, ~2,500 of 3 KiB. Negative: no bound.
	WindowBytes int
	// WindowAge also drops events the hub got longer ago than this (0: no
	// age bound).
	WindowAge time.Duration
}

// Subscribe refuses a stream with these when a cap is reached.
var (
	ErrFull      = errors.New("this node serves as many streams as it may")
	ErrUserLimit = errors.New("this user has as many streams as allowed")
)

// Hub is the registry of this process's subscribers.
//
// Why subscribers join through a list: in a reconnect storm thousands of
// streams subscribe within seconds. Each used to take the write lock of
// the indexes, and on a saturated machine every hand-off of that lock
// waits for a core: a node's openings queued there for about 0.6 s each
// (docs/SCALING.md section 6). Subscribe now only appends to joining,
// under a lock nothing else holds for long; whoever reads the indexes next
// (a Publish, a heartbeat) admits every joiner at once, under one write
// lock. A joiner is admitted before any event published after its
// Subscribe returned, since Publish admits before it fans out.
type Hub struct {
	cfg    Config
	nextID atomic.Uint64
	mu     sync.RWMutex // guards all, byUser and byRole
	all    map[*Subscriber]struct{}
	byUser map[string]map[*Subscriber]struct{}
	byRole map[string]map[*Subscriber]struct{}
	// publish is held for writing by one publisher at a time
	// (Subscriber.lastQueued relies on it) and for reading by resumes from
	// the window (Since), many at once: in a reconnect storm thousands of
	// streams resume, and queued one by one they waited seconds.
	publish sync.RWMutex
	window  *window // guarded by publish

	joinMu  sync.Mutex
	joining []*Subscriber  // subscribed, not in the indexes yet; guarded by joinMu
	joiners atomic.Int32   // len(joining), read without joinMu
	count   int            // subscribers, joining ones included; guarded by joinMu
	perUser map[string]int // the same by user id; guarded by joinMu

	dropped atomic.Int64
}

// New returns an empty hub.
func New(cfg Config) *Hub {
	cfg.MaxPending = cmp.Or(cfg.MaxPending, 1024)
	cfg.Window = cmp.Or(cfg.Window, 10_000)
	cfg.WindowBytes = cmp.Or(cfg.WindowBytes, 8<<20)
	return &Hub{
		cfg:     cfg,
		window:  newWindow(cfg.Window, cfg.WindowAge, cfg.WindowBytes),
		all:     map[*Subscriber]struct{}{},
		byUser:  map[string]map[*Subscriber]struct{}{},
		byRole:  map[string]map[*Subscriber]struct{}{},
		perUser: map[string]int{},
	}
}

// Subscribe registers a subscriber for id. From now on it receives every
// matching event published; call Unsubscribe when the stream ends. It
// returns ErrFull or ErrUserLimit when a cap is reached.
func (h *Hub) Subscribe(id notify.Identity) (*Subscriber, error) {
	s := newSubscriber(h.nextID.Add(1), id, h.cfg.MaxPending)
	h.joinMu.Lock()
	defer h.joinMu.Unlock()
	if h.cfg.MaxSubscribers > 0 && h.count >= h.cfg.MaxSubscribers {
		return nil, ErrFull
	}
	if h.cfg.MaxPerUser > 0 && h.perUser[id.UserID] >= h.cfg.MaxPerUser {
		return nil, ErrUserLimit
	}
	h.count++
	h.perUser[id.UserID]++
	h.joining = append(h.joining, s)
	h.joiners.Store(int32(len(h.joining)))
	return s, nil
}

// Unsubscribe removes s and closes it (reason "closed" unless it already has one).
func (h *Hub) Unsubscribe(s *Subscriber) {
	s.Close(ReasonClosed)
	h.mu.Lock()
	h.admitLocked()
	_, ok := h.all[s]
	delete(h.all, s)
	removeFrom(h.byUser, s.identity.UserID, s)
	for _, r := range s.identity.Roles {
		removeFrom(h.byRole, r, s)
	}
	h.mu.Unlock()
	if !ok {
		return // unsubscribed before
	}
	h.joinMu.Lock()
	defer h.joinMu.Unlock()
	h.count--
	if h.perUser[s.identity.UserID]--; h.perUser[s.identity.UserID] <= 0 {
		delete(h.perUser, s.identity.UserID)
	}
}

// rlock read-locks the indexes, every subscriber that joined so far
// admitted to them.
func (h *Hub) rlock() {
	if h.joiners.Load() > 0 {
		h.mu.Lock()
		h.admitLocked()
		h.mu.Unlock()
	}
	h.mu.RLock()
}

// admitLocked moves the joining subscribers into the indexes; h.mu is
// held for writing.
func (h *Hub) admitLocked() {
	h.joinMu.Lock()
	joined := h.joining
	h.joining = nil
	h.joiners.Store(0)
	h.joinMu.Unlock()
	for _, s := range joined {
		h.all[s] = struct{}{}
		addTo(h.byUser, s.identity.UserID, s)
		for _, r := range s.identity.Roles {
			addTo(h.byRole, r, s)
		}
	}
}

func addTo(idx map[string]map[*Subscriber]struct{}, key string, s *Subscriber) {
	set := idx[key]
	if set == nil {
		set = map[*Subscriber]struct{}{}
		idx[key] = set
	}
	set[s] = struct{}{}
}

func removeFrom(idx map[string]map[*Subscriber]struct{}, key string, s *Subscriber) {
	if set := idx[key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(idx, key)
		}
	}
}

// Publish queues ev on every matching subscriber and returns how many got it.
// Events must be published in seq order. ev must not change afterwards: the
// window keeps it for resuming streams.
func (h *Hub) Publish(ev *Event) int {
	h.publish.Lock()
	defer h.publish.Unlock()
	if h.window.maxAge > 0 {
		h.window.add(ev, time.Now())
	} else {
		h.window.add(ev, time.Time{})
	}
	if ev.expired(time.Now()) {
		return 0 // kept in the window for its seq; nobody is sent it
	}
	h.rlock()
	defer h.mu.RUnlock()
	if ev.Target.Everyone() {
		n := 0
		for s := range h.all {
			n += h.offer(s, ev)
		}
		return n
	}
	n := 0
	if ev.Target.UserID != "" {
		for s := range h.byUser[ev.Target.UserID] {
			n += h.offer(s, ev)
		}
	}
	for _, r := range ev.Target.Roles {
		for s := range h.byRole[r] {
			n += h.offer(s, ev)
		}
	}
	return n
}

// offer queues ev on s once (a subscriber reached through its user and a role
// is offered the event twice).
func (h *Hub) offer(s *Subscriber, ev *Event) int {
	if s.lastQueued >= ev.Seq {
		return 0
	}
	s.lastQueued = ev.Seq
	f, ok := s.accepts(ev)
	if !ok {
		return 0
	}
	if !s.enqueue(f) {
		h.dropped.Add(1)
		return 0
	}
	return 1
}

// SendToUser queues f on every subscriber of userID (read-state changes).
func (h *Hub) SendToUser(userID string, f Frame) int {
	h.rlock()
	defer h.mu.RUnlock()
	n := 0
	for s := range h.byUser[userID] {
		if s.enqueue(f) {
			n++
		}
	}
	return n
}

// HasUser reports whether userID has a subscriber here.
// UserIdentity is the identity of one of userID's subscribers here (the
// latest roles a stream of theirs opened with), for reading what that user
// may see on their behalf; false when they have none.
func (h *Hub) UserIdentity(userID string) (notify.Identity, bool) {
	h.rlock()
	defer h.mu.RUnlock()
	var best *Subscriber
	for s := range h.byUser[userID] {
		if best == nil || s.id > best.id {
			best = s
		}
	}
	if best == nil {
		return notify.Identity{}, false
	}
	return best.identity, true
}

func (h *Hub) HasUser(userID string) bool {
	h.rlock()
	defer h.mu.RUnlock()
	return len(h.byUser[userID]) > 0
}

// SetMuted replaces the muted modules of every subscriber of userID.
func (h *Hub) SetMuted(userID string, modules []string) {
	h.rlock()
	defer h.mu.RUnlock()
	for s := range h.byUser[userID] {
		s.SetMuted(modules)
	}
}

// Broadcast queues f on every subscriber (heartbeats).
func (h *Hub) Broadcast(f Frame) {
	h.rlock()
	defer h.mu.RUnlock()
	for s := range h.all {
		if !s.enqueue(f) {
			h.dropped.Add(1)
		}
	}
}

// Dropped is the number of subscribers closed because they fell behind.
func (h *Hub) Dropped() int64 { return h.dropped.Load() }

// Len is the number of subscribers.
func (h *Hub) Len() int {
	h.rlock()
	defer h.mu.RUnlock()
	return len(h.all)
}

// CloseStale closes subscribers with no successful write since before cutoff
// and returns how many it closed.
func (h *Hub) CloseStale(cutoff time.Time) int {
	h.rlock()
	defer h.mu.RUnlock()
	n := 0
	for s := range h.all {
		if s.LastWrite().Before(cutoff) && s.Close(ReasonTimeout) {
			n++
		}
	}
	return n
}

// CloseWhere closes the subscribers for which match is true, with reason.
func (h *Hub) CloseWhere(match func(notify.Identity) bool, reason Reason) int {
	h.rlock()
	defer h.mu.RUnlock()
	n := 0
	for s := range h.all {
		if match(s.identity) && s.Close(reason) {
			n++
		}
	}
	return n
}

// Snapshot describes every subscriber, for the status page.
func (h *Hub) Snapshot() []Info {
	h.rlock()
	defer h.mu.RUnlock()
	out := make([]Info, 0, len(h.all))
	for s := range h.all {
		out = append(out, s.Info())
	}
	return out
}

// Subscribers lists the current subscribers (a node draining its streams
// closes them one by one).
func (h *Hub) Subscribers() []*Subscriber {
	h.rlock()
	defer h.mu.RUnlock()
	out := make([]*Subscriber, 0, len(h.all))
	for s := range h.all {
		out = append(out, s)
	}
	return out
}
