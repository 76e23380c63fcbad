package stream

import (
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Why memory is released after a burst of openings: streams opened all at
// once (a node starting, the clients of a dead node coming over) are each
// served by a handler goroutine until they detach, and while they wait for
// their turn at the database the node holds, per stream, the handler's
// grown stack, net/http's buffers, the request and gin's context. Once the
// streams detach, that memory is garbage, but the process keeps it:
//
//   - gin and net/http put their contexts and buffers back in sync.Pools,
//     which the garbage collector empties only over two cycles, and an idle
//     node collects every two minutes at most;
//   - the heap's free pages return to the OS slowly, and only down to what
//     the collector's next goal allows, which the burst set high;
//   - new goroutines start with a stack the size of the average one seen
//     by the last collection, which the waiting handlers made large.
//
// Measured on one node with 8,000 streams opened at once: 43 KiB of RSS a
// stream a minute after the burst, 21 KiB after two forced collections that
// return the free pages (debug.FreeOSMemory twice). So once a burst has
// subsided, the server does that: at most every releaseEvery, and only
// when at least Config.ReleaseAfter streams opened since the last release
// and the last second's openings are under 1% of them (the burst is over,
// not pausing). Each release is a full collection or two: tens to hundreds
// of milliseconds of CPU at 10,000 to 100,000 streams, against a burst that
// cost seconds.

// releaseEvery is the shortest time between two releases.
const releaseEvery = 10 * time.Second

// releaser counts openings and decides when to release memory.
type releaser struct {
	after   int64        // Config.ReleaseAfter
	opened  atomic.Int64 // openings since the last tick
	pending int64        // openings since the last release; owned by Run
	last    time.Time    // the last release; owned by Run
	running atomic.Bool  // a release is under way
}

// noteOpened counts one stream whose opening is over.
func (r *releaser) noteOpened() { r.opened.Add(1) }

// tick is called every second by Run: it starts a release in a goroutine of
// its own when a burst has subsided, and reports whether it did.
func (r *releaser) tick(now time.Time, done func(streams int64, took time.Duration)) bool {
	n := r.opened.Swap(0)
	r.pending += n
	if r.after <= 0 || r.pending < r.after || n*100 >= r.pending || now.Sub(r.last) < releaseEvery || r.running.Load() {
		return false
	}
	streams := r.pending
	r.pending, r.last = 0, now
	r.running.Store(true)
	go func() {
		start := time.Now()
		// Twice: the first collection moves the pools' contents to their
		// victim caches, the second frees them; each returns free pages.
		debug.FreeOSMemory()
		debug.FreeOSMemory()
		took := time.Since(start)
		// Over before it is reported: whoever hears of it (a test's next
		// tick, say) finds the releaser free again.
		r.running.Store(false)
		done(streams, took)
	}()
	return true
}
