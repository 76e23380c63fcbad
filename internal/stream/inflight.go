package stream

import (
	"context"
	"sync"
	"time"
)

// Why deferred counts wait for the openings: in a reconnect storm a node
// opens thousands of streams in a few seconds, and each stream resumed from
// the hub's window owes its client an unread count (unread.go). Read as
// soon as each stream is open, those counts were most of what PostgreSQL
// did in the storm (two thirds of the server's backend time on a 2-core
// machine), beside the openings still waiting and the live deliveries of
// every other stream. So a deferred count waits until no stream is in the
// database part of its opening, or maxCountWait at most: the counts follow
// the storm instead of competing with it. An opening leaves that part once
// its reads are done (the table path: its turn given back; the window's:
// its mutes read), so a client slow to read its replay holds no count back.

// maxCountWait bounds how long a deferred count waits for the node's
// openings: a node that is always opening something still sends its
// counts.
const maxCountWait = 10 * time.Second

// openingsInFlight counts the streams in the database part of their
// opening.
type openingsInFlight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n is 0
}

func newOpeningsInFlight() *openingsInFlight {
	idle := make(chan struct{})
	close(idle)
	return &openingsInFlight{idle: idle}
}

// enter counts an opening in; the function it returns counts it out, once
// however often it is called.
func (o *openingsInFlight) enter() (leave func()) {
	o.mu.Lock()
	if o.n == 0 {
		o.idle = make(chan struct{})
	}
	o.n++
	o.mu.Unlock()
	var once sync.Once
	return func() { once.Do(o.leave) }
}

func (o *openingsInFlight) leave() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n--; o.n == 0 {
		close(o.idle)
	}
}

// waitQuiet waits until no opening is in flight, or at most most. It
// returns false when ctx or gone ends first.
func (o *openingsInFlight) waitQuiet(ctx context.Context, gone <-chan struct{}, most time.Duration) bool {
	o.mu.Lock()
	idle := o.idle
	o.mu.Unlock()
	select {
	case <-idle:
		return true
	default:
	}
	t := time.NewTimer(most)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-gone:
		return false
	}
}

// inFlight is how many openings are in flight now.
func (o *openingsInFlight) inFlight() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}
