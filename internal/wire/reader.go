package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ReaderConfig describes one client of the stream.
type ReaderConfig struct {
	// Client makes the requests. Required.
	Client *http.Client
	// URL is the stream's address for the next connection. It is called
	// before each one, so a caller can move between nodes. Required.
	URL func() string
	// Header is sent with every request (Authorization).
	Header http.Header
	// From is the resume point (Last-Event-ID) of the first connection:
	// the reader must receive every notification for its identity with a
	// greater seq. Negative: the first connection is live only.
	From int64
	// MinBackoff is the wait after a failed connection attempt; each
	// further failure doubles it, up to MaxBackoff, and each wait is
	// between half and all of that (jitter, so clients that lost the same
	// server do not come back together). Defaults 10ms and 1s.
	MinBackoff, MaxBackoff time.Duration
	// UseRetryField makes the reader behave as EventSource does: after a
	// connection ends it waits the server's retry field (MinBackoff until
	// one came), and failures double from there. Without it the reader
	// reconnects at once after a connection that worked, as a client that
	// measures the server wants.
	UseRetryField bool
	// Idle drops a connection that stays silent this long: a half-open
	// connection looks like that. Once a connected message gives the
	// heartbeat interval, the limit is three intervals and 5 s. 0: never.
	Idle time.Duration

	// OnNotification gets each notification event, checked by
	// ScanNotification. An error stops the reader, and Run returns it.
	OnNotification func(Delivery) error
	// OnMessage gets every other message (connected, heartbeat, status),
	// decoded. An error stops the reader, and Run returns it.
	OnMessage func(Received) error
	// OnMalformed gets each event that breaks the format (a notification
	// whose id, seq and type disagree; undecodable JSON); it is counted in
	// ReaderStats.ProtocolErrors either way. An error stops the reader, and
	// Run returns it; nil goes on reading.
	OnMalformed func(error) error
	// OnRetry is called before each wait to reconnect, with why the last
	// connection or attempt ended. An error stops the reader, and Run
	// returns it (for instance when retrying cannot help).
	OnRetry func(Retry) error
}

// Delivery is a notification as the stream delivered it, stamped when its
// event was read off the connection (before any decoding).
type Delivery struct {
	Seq   int64
	ID    string
	At    time.Time
	Event Event
}

// Retry describes a reconnect about to happen.
type Retry struct {
	// Err is why the last connection ended, or why the attempt failed.
	Err error
	// Failures counts the attempts that failed since the last connection
	// that got its connected message (0: that connection just ended).
	Failures int
	// Wait is how long the reader waits before the next attempt.
	Wait time.Duration
}

// ErrEnded is a connection the server ended cleanly.
var ErrEnded = errors.New("the server ended the stream")

// Reader follows one identity's stream across connections, as a
// well-behaved client does: when a connection ends (the server closed it,
// the network failed, or Reconnect asked) it reconnects with Last-Event-ID
// set to the last seq it received, backing off while attempts fail. It
// counts what happened in ReaderStats.
type Reader struct {
	cfg       ReaderConfig
	connected chan struct{}
	once      sync.Once
	// idled is set when the idle timer ended the current connection.
	idled atomic.Bool

	mu        sync.Mutex
	last      int64
	retry     time.Duration      // the server's last retry field
	heartbeat time.Duration      // from the last connected message
	abort     context.CancelFunc // ends the current connection
	reconnect bool               // Reconnect asked since the connection began
	beatPrev  time.Time
	stats     ReaderStats
}

// NewReader returns a reader; Run starts it.
func NewReader(cfg ReaderConfig) *Reader {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 10 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Second
	}
	return &Reader{cfg: cfg, connected: make(chan struct{}), last: cfg.From}
}

// Connected is closed once the first connection has received its connected
// message: from then on the reader is subscribed.
func (r *Reader) Connected() <-chan struct{} { return r.connected }

// Reconnect ends the current connection (or the one being opened) and
// resumes on a new one at once.
func (r *Reader) Reconnect() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconnect = true
	if r.abort != nil {
		r.abort()
	}
}

// ResumeAfter moves the resume point of the next connection to seq.
func (r *Reader) ResumeAfter(seq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = seq
}

// LastSeq is the resume point: the last seq received, or the start point.
func (r *Reader) LastSeq() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// stopError is an error of a callback, which ends Run.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// Run connects and reads until ctx ends (it returns nil then) or a callback
// returns an error (it returns that error).
func (r *Reader) Run(ctx context.Context) error {
	failures := 0
	for {
		worked, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if stop, ok := errors.AsType[stopError](err); ok {
			return stop.err
		}
		if worked {
			failures = 0
		} else {
			failures++
		}
		wait := r.backoff(failures)
		if r.cfg.OnRetry != nil {
			if err := r.cfg.OnRetry(Retry{Err: err, Failures: failures, Wait: wait}); err != nil {
				return err
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// backoff is the wait before the next attempt, after failures failed ones.
func (r *Reader) backoff(failures int) time.Duration {
	base, steps := r.cfg.MinBackoff, failures
	if r.cfg.UseRetryField {
		steps++ // a connection that ended waits too
		r.mu.Lock()
		if r.retry > 0 {
			base = r.retry
		}
		r.mu.Unlock()
	}
	if steps == 0 {
		return 0
	}
	d := base
	for i := 1; i < steps && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// session opens one connection and reads it until it ends. worked reports
// whether it got its connected message.
func (r *Reader) session(ctx context.Context) (worked bool, err error) {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.idled.Store(false)
	reset := func() {}
	if r.cfg.Idle > 0 {
		idle := time.AfterFunc(r.idleTimeout(), func() { r.idled.Store(true); cancel() })
		defer idle.Stop()
		reset = func() { idle.Reset(r.idleTimeout()) }
	}
	s, err := r.open(connCtx, cancel)
	if err != nil {
		r.mu.Lock()
		r.stats.ConnectErrors++
		r.mu.Unlock()
		return false, r.why(err)
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err == nil {
			err = r.handle(ev, s.Retry())
		}
		if err != nil {
			r.ended(ctx.Err() != nil)
			return true, r.why(err)
		}
		reset()
	}
}

// open connects with the resume point and reads up to the connected
// message; abort is what Reconnect calls to end the connection.
func (r *Reader) open(ctx context.Context, abort context.CancelFunc) (*Stream, error) {
	r.mu.Lock()
	r.reconnect = false
	last := r.last
	r.mu.Unlock()
	h := r.cfg.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if last >= 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	s, err := Open(ctx, r.cfg.Client, r.cfg.URL(), h)
	if err != nil {
		return nil, err
	}
	ev, err := s.Next()
	var m Received
	if err == nil {
		m, err = Decode(ev)
	}
	if err == nil && m.Type != TypeConnected {
		err = fmt.Errorf("first message %.200q, want connected", ev.Data)
	}
	var c Connected
	if err == nil {
		c, err = m.Connected()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open stream: %w", err)
	}
	m.Retry = s.Retry()
	r.mu.Lock()
	r.abort = abort  // cancelling the request ends a blocked read safely
	if r.reconnect { // Reconnect was asked while connecting
		abort()
	}
	r.retry = s.Retry()
	r.heartbeat = time.Duration(c.HeartbeatInterval) * time.Millisecond
	r.stats.Open = true
	r.stats.Connects++
	r.beatPrev = time.Now()
	r.mu.Unlock()
	r.once.Do(func() { close(r.connected) })
	if r.cfg.OnMessage != nil {
		if err := r.cfg.OnMessage(m); err != nil {
			s.Close()
			return nil, stopError{err}
		}
	}
	return s, nil
}

// ended counts the end of a connection: a resume when Reconnect asked for
// it, a drop unless the reader is stopping.
func (r *Reader) ended(stopping bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Open, r.abort = false, nil
	switch {
	case stopping:
	case r.reconnect:
		r.stats.Resumes++
	default:
		r.stats.Drops++
	}
}

// why is the error to report for a connection that ended with err.
func (r *Reader) why(err error) error {
	switch {
	case r.idled.Load():
		return fmt.Errorf("no data for %s (not even a heartbeat)", r.idleTimeout())
	case errors.Is(err, io.EOF):
		return ErrEnded
	}
	return err
}

func (r *Reader) idleTimeout() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idleTimeoutLocked()
}

func (r *Reader) idleTimeoutLocked() time.Duration {
	if r.heartbeat > 0 {
		return 3*r.heartbeat + 5*time.Second
	}
	return r.cfg.Idle
}
