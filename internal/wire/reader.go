package wire

import (
	"context"
	"errors"
	"net/http"
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
