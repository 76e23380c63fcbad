package hub

import (
	"sort"
	"sync/atomic"
	"time"
)

// Why a window: when a node dies, its clients reconnect to the others with
// a Last-Event-ID that is seconds old, and each used to replay from the
// database (a query, its rows decoded, every notification serialized again
// for that one stream). The hub has already seen every one of those
// notifications, serialized once, in seq order. It keeps the most recent
// ones (at most Config.Window events and Config.WindowBytes, none older
// than Config.WindowAge), so a
// resume whose point lies inside them is answered from memory with the
// frames every live stream got, filtered by the rule the live fan-out
// applies (Subscriber.accepts): the same notifications, the same bytes,
// no database read.
//
// The window knows which seqs it covers only once its owner (the feed)
// has said where it starts (StartWindow): before that, and for a resume
// point older than the window, Since says no and the stream replays from
// the database as before.

// window is a ring of the last published events, in seq order. It is
// guarded by Hub.publish, which every Publish holds for its whole fan-out.
type window struct {
	max      int
	maxAge   time.Duration
	maxBytes int
	bytes    int // held: the frames' bytes plus eventOverhead each
	ring     []windowEntry
	head     int // index of the oldest entry
	n        int
	// floor: every event the hub was handed with seq > floor is in the
	// ring (-1: unknown, the window answers nothing).
	floor int64
	last  int64 // the highest seq handed to the hub (floor when none)
	// seen mirrors floor and last for Covers, which takes no lock.
	seenFloor, seenLast atomic.Int64
}

type windowEntry struct {
	ev *Event
	at int64 // when the hub got it (unix nanoseconds), for maxAge
}

// eventOverhead approximates what an event costs beyond its frame's bytes
// (the Event, its target and the ring slot), for Config.WindowBytes.
const eventOverhead = 160

func newWindow(max int, maxAge time.Duration, maxBytes int) *window {
	w := &window{max: max, maxAge: maxAge, maxBytes: maxBytes}
	w.set(-1, -1)
	return w
}

func (w *window) set(floor, last int64) {
	w.floor, w.last = floor, last
	w.seenFloor.Store(floor)
	w.seenLast.Store(last)
}

// start forgets what the window holds and says that from now on it holds
// every event with seq > position.
func (w *window) start(position int64) {
	clear(w.ring)
	w.head, w.n, w.bytes = 0, 0, 0
	w.set(position, position)
}

// add appends ev (seqs increase) and evicts what falls out by count or age.
func (w *window) add(ev *Event, now time.Time) {
	if w.floor < 0 || w.max <= 0 || ev.Seq <= w.last {
		return
	}
	if w.ring == nil {
		w.ring = make([]windowEntry, w.max)
	}
	if w.n == w.max {
		w.evictOldest()
	}
	w.ring[(w.head+w.n)%w.max] = windowEntry{ev: ev, at: now.UnixNano()}
	w.n++
	w.bytes += len(ev.Data) + eventOverhead
	w.last = ev.Seq
	for w.maxBytes > 0 && w.bytes > w.maxBytes && w.n > 1 {
		w.evictOldest()
	}
	if w.maxAge > 0 {
		cutoff := now.Add(-w.maxAge).UnixNano()
		for w.n > 0 && w.ring[w.head].at < cutoff {
			w.evictOldest()
		}
	}
	w.set(w.floor, w.last)
}

func (w *window) evictOldest() {
	w.floor = w.ring[w.head].ev.Seq
	w.bytes -= len(w.ring[w.head].ev.Data) + eventOverhead
	w.ring[w.head] = windowEntry{}
	w.head = (w.head + 1) % w.max
	w.n--
}

func (w *window) at(i int) *Event { return w.ring[(w.head+i)%w.max].ev }

// covers reports whether every event after `after` is in the window.
func (w *window) covers(after int64) bool {
	return w.floor >= 0 && after >= w.floor && after <= w.last
}

// from is the index of the first event with seq > after.
func (w *window) from(after int64) int {
	return sort.Search(w.n, func(i int) bool { return w.at(i).Seq > after })
}

// Covers reports whether the window holds every event after `after` now.
// It takes no lock: a hint for a stream deciding how to open (the window
// moves on meanwhile); Since is the answer.
func (h *Hub) Covers(after int64) bool {
	floor := h.window.seenFloor.Load()
	return floor >= 0 && after >= floor && after <= h.window.seenLast.Load()
}

// StartWindow says that every event published from now on follows
// position without a gap (the feed calls it with the position it starts
// from), so resumes from position on can be answered from memory. It
// forgets what the window held.
func (h *Hub) StartWindow(position int64) {
	h.publish.Lock()
	defer h.publish.Unlock()
	h.window.start(position)
}

// Since appends to buf the frames published after `after` that s receives
// live — the events whose target matches s (notify.Target.Matches, what
// Publish's indexes resolve), as Subscriber.accepts passes them with s's
// mutes now — in seq order, and returns through: the last seq they cover.
// ok is false, and nothing is appended, when the window does not hold
// every event after `after` (older, unknown, or ahead of the hub).
//
// s must be subscribed already. Since reads the window while no event is
// being published, so every event after through reaches s's queue and
// every event up to through is in the answer: a stream writes these, then
// its live frames above through, with no gap and no repeat.
func (h *Hub) Since(s *Subscriber, after int64, buf []Frame) (frames []Frame, through int64, ok bool) {
	h.publish.RLock()
	defer h.publish.RUnlock()
	w := h.window
	if !w.covers(after) {
		return buf, 0, false
	}
	now := time.Now()
	for i := w.from(after); i < w.n; i++ {
		ev := w.at(i)
		if !ev.Target.Matches(s.identity) || ev.expired(now) {
			continue
		}
		if f, ok := s.accepts(ev); ok {
			buf = append(buf, f)
		}
	}
	return buf, w.last, true
}
