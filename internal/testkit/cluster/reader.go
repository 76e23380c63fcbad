package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/notifyd/notifyd/internal/sseclient"
)

// StreamPath is notifyd's event stream.
const StreamPath = "/api/notifications/ws"

// ReaderConfig describes one client of the stream.
type ReaderConfig struct {
	// Client makes the requests. Required.
	Client *http.Client
	// Nodes are the servers to connect to. Required.
	Nodes *Nodes
	// Token is the bearer token. Required.
	Token string
	// Node is the node of the first connection.
	Node int
	// Start is the resume point (Last-Event-ID) of the first connection, so
	// that what the reader must receive is exactly defined: every
	// notification for its identity with seq > Start. Negative: the first
	// connection is live only, without Last-Event-ID.
	Start int64
	// MaxBackoff caps the wait between failed connection attempts. Default 1s.
	MaxBackoff time.Duration
}

// Reader is one client identity reading the stream across connections and
// nodes, as a well-behaved browser client does: when its connection ends
// (the server closed it, its node died, or Resume asked), it reconnects,
// to another node when its own is gone, with Last-Event-ID set to the last
// seq it received. It records every notification delivered, with the time
// it was read off the connection, and every heartbeat.
type Reader struct {
	cfg       ReaderConfig
	connected chan struct{}
	once      sync.Once

	mu        sync.Mutex
	seqs      []int64
	at        []int64 // receipt, unix nanoseconds
	last      int64
	node      int
	abort     context.CancelFunc // ends the current connection
	switchTo  int                // node asked for by Resume; -1: none
	stats     ReaderStats
	beatPrev  time.Time
	protoErrs []string
}

// ReaderStats counts what happened to a reader.
type ReaderStats struct {
	Open          bool           `json:"open"`
	Node          int            `json:"node"`
	Received      int            `json:"received"`
	LastSeq       int64          `json:"last_seq"`
	Connects      int            `json:"connects"`
	ConnectErrors int            `json:"connect_errors"`
	Resumes       int            `json:"resumes"` // connections ended on purpose (Resume)
	Drops         int            `json:"drops"`   // connections ended by the server or the network
	CloseReasons  map[string]int `json:"close_reasons,omitempty"`
	// Heartbeats counts heartbeats since the last MarkHeartbeats, and
	// MaxBeatGap is the longest wait for one since then (from the mark or
	// a connect to the first, then between consecutive ones).
	Heartbeats     int   `json:"heartbeats"`
	MaxBeatGapMs   int64 `json:"max_beat_gap_ms"`
	ProtocolErrors int   `json:"protocol_errors"`
	// FirstError describes the first protocol error (a malformed event).
	FirstError string `json:"first_error,omitempty"`
}

// NewReader returns a reader; Run starts it.
func NewReader(cfg ReaderConfig) *Reader {
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Second
	}
	return &Reader{cfg: cfg, connected: make(chan struct{}), last: cfg.Start, node: cfg.Node, switchTo: -1}
}

// Connected is closed once the first connection has received its
// "connected" message: from then on the reader is subscribed.
func (r *Reader) Connected() <-chan struct{} { return r.connected }

// Resume ends the current connection and reconnects with Last-Event-ID, to
// node (or, if node is negative, to a random node that is up, another one
// when there is a choice).
func (r *Reader) Resume(node int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if node < 0 {
		node = r.cfg.Nodes.Pick(r.node)
	}
	r.switchTo = node
	if r.abort != nil {
		r.abort()
	}
}

// Stats returns the reader's counters.
func (r *Reader) Stats() ReaderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Node, s.Received, s.LastSeq = r.node, len(r.seqs), r.last
	s.CloseReasons = make(map[string]int, len(r.stats.CloseReasons))
	for k, v := range r.stats.CloseReasons {
		s.CloseReasons[k] = v
	}
	if len(r.protoErrs) > 0 {
		s.FirstError = r.protoErrs[0]
	}
	return s
}

// LastSeq is the last seq received (or the start point).
func (r *Reader) LastSeq() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Received returns copies of the seqs received, in the order they arrived,
// and when each was read (unix nanoseconds).
func (r *Reader) Received() (seqs, at []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.seqs...), append([]int64(nil), r.at...)
}

// MarkHeartbeats restarts the heartbeat count and the longest gap.
func (r *Reader) MarkHeartbeats() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Heartbeats, r.stats.MaxBeatGapMs = 0, 0
	r.beatPrev = time.Now()
}

// Run connects and reads until ctx ends.
func (r *Reader) Run(ctx context.Context) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		connCtx, cancel := context.WithCancel(ctx)
		s, node, err := r.connect(connCtx, cancel)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.stats.ConnectErrors++
			r.node = r.cfg.Nodes.Pick(node) // try elsewhere next time
			r.mu.Unlock()
			backoff = min(max(2*backoff, 10*time.Millisecond), r.cfg.MaxBackoff)
			sleep(ctx, backoff/2+rand.N(backoff/2+1))
			continue
		}
		backoff = 0
		r.consume(s)
		s.Close()
		cancel()
		r.mu.Lock()
		r.stats.Open, r.abort = false, nil
		switch {
		case ctx.Err() != nil:
		case r.switchTo >= 0:
			r.stats.Resumes++
		default:
			r.stats.Drops++
			if !r.cfg.Nodes.Up(r.node) {
				r.node = r.cfg.Nodes.Pick(r.node)
			}
		}
		r.mu.Unlock()
	}
}

// connect opens a connection and reads up to its "connected" message.
func (r *Reader) connect(ctx context.Context, abort context.CancelFunc) (*sseclient.Stream, int, error) {
	r.mu.Lock()
	if r.switchTo >= 0 {
		r.node, r.switchTo = r.switchTo, -1
	}
	node, last := r.node, r.last
	r.mu.Unlock()
	h := http.Header{"Authorization": {"Bearer " + r.cfg.Token}}
	if last >= 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	s, err := sseclient.Open(ctx, r.cfg.Client, r.cfg.Nodes.URL(node)+StreamPath, h)
	if err != nil {
		return nil, node, err
	}
	ev, err := s.Next()
	var m wireMessage
	if err == nil {
		err = json.Unmarshal(ev.Data, &m)
	}
	if err == nil && m.Type != "connected" {
		err = fmt.Errorf("first message %q, want connected", ev.Data)
	}
	if err != nil {
		s.Close()
		return nil, node, fmt.Errorf("open stream: %w", err)
	}
	r.mu.Lock()
	r.abort = abort      // cancelling the request ends a blocked read safely
	if r.switchTo >= 0 { // Resume was asked while connecting
		r.abort()
	}
	r.stats.Open = true
	r.stats.Connects++
	r.beatPrev = time.Now()
	r.mu.Unlock()
	r.once.Do(func() { close(r.connected) })
	return s, node, nil
}

// wireMessage is the part of a stream message the reader looks at.
type wireMessage struct {
	Type           string `json:"type"`
	NotificationID string `json:"notificationId"`
	Data           struct {
		Seq     int64  `json:"seq"`
		Closing string `json:"closing"`
	} `json:"data"`
}

func (r *Reader) consume(s *sseclient.Stream) {
	for {
		ev, err := s.Next()
		if err != nil {
			return
		}
		now := time.Now()
		if ev.ID != "" {
			seq, err := notificationSeq(ev)
			if err != nil {
				r.protocolError(err.Error())
				continue
			}
			r.mu.Lock()
			r.seqs = append(r.seqs, seq)
			r.at = append(r.at, now.UnixNano())
			r.last = seq
			r.mu.Unlock()
			continue
		}
		var m wireMessage
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			r.protocolError(fmt.Sprintf("undecodable event %q: %v", ev.Data, err))
			continue
		}
		r.mu.Lock()
		switch {
		case m.Type == "heartbeat":
			r.stats.Heartbeats++
			r.stats.MaxBeatGapMs = max(r.stats.MaxBeatGapMs, now.Sub(r.beatPrev).Milliseconds())
			r.beatPrev = now
		case m.Type == "status" && m.Data.Closing != "":
			if r.stats.CloseReasons == nil {
				r.stats.CloseReasons = map[string]int{}
			}
			r.stats.CloseReasons[m.Data.Closing]++
		case m.Type == "notification":
			r.stats.ProtocolErrors++ // a notification must carry its seq as the event id
		}
		r.mu.Unlock()
	}
}

// notificationSeq checks a notification event and returns its seq. The
// event id, the type, the notification id and data.seq must agree. The
// fields are found by scanning rather than by decoding the whole event:
// thousands of streams in one client process make decoding the bulk of its
// CPU. notifyd writes "type" first and data's "id" then "seq" first inside
// "data"; JSON escapes quotes inside strings, so `"seq":` can only be a key.
func notificationSeq(ev sseclient.Event) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("malformed notification event (%s): id %q, data %.200q", why, ev.ID, ev.Data)
	}
	seq, err := strconv.ParseInt(ev.ID, 10, 64)
	if err != nil || seq <= 0 {
		return bad("id")
	}
	d := ev.Data
	if !bytes.HasPrefix(d, []byte(`{"type":"notification",`)) || !bytes.HasSuffix(d, []byte(`"}`)) {
		return bad("type")
	}
	i := bytes.Index(d, []byte(`"seq":`))
	if i < 0 {
		return bad("no data.seq")
	}
	rest := d[i+len(`"seq":`):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 || !bytes.Equal(rest[:j], []byte(ev.ID)) {
		return bad("data.seq differs from the id")
	}
	k := bytes.LastIndex(d, []byte(`"notificationId":"`))
	if k < 0 || len(d)-k-len(`"notificationId":"`)-2 < 1 {
		return bad("no notificationId")
	}
	return seq, nil
}

func (r *Reader) protocolError(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.ProtocolErrors++
	if len(r.protoErrs) < 3 {
		r.protoErrs = append(r.protoErrs, msg)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ErrBehind is returned by WaitFor when a reader did not get there in time.
var ErrBehind = errors.New("readers behind")

// WaitFor waits until every reader has received seq or more (a sentinel
// broadcast at the end of a run tells that the pipeline has drained), or
// until timeout; it returns how many readers are still behind.
func WaitFor(ctx context.Context, readers []*Reader, seq int64, timeout time.Duration) (behind int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		behind = 0
		for _, r := range readers {
			if r.LastSeq() < seq {
				behind++
			}
		}
		if behind == 0 {
			return 0, nil
		}
		if time.Now().After(deadline) {
			return behind, fmt.Errorf("%w: %d of %d readers had not received seq %d after %s", ErrBehind, behind, len(readers), seq, timeout)
		}
		select {
		case <-ctx.Done():
			return behind, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
