package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/notifyd/notifyd/internal/wire"
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
// nodes: a wire.Reader that reconnects to another node when its own is gone
// (or when Resume names one). It records every notification delivered,
// with the time it was read off the connection.
type Reader struct {
	*wire.Reader
	cfg ReaderConfig

	mu       sync.Mutex
	seqs     []int64
	at       []int64 // receipt, unix nanoseconds
	node     int     // of the current or next connection
	switchTo int     // node asked for by Resume; -1: none
}

// ReaderStats counts what happened to a reader, and names its node.
type ReaderStats struct {
	wire.ReaderStats
	Node int `json:"node"`
}

// NewReader returns a reader; Run starts it.
func NewReader(cfg ReaderConfig) *Reader {
	r := &Reader{cfg: cfg, node: cfg.Node, switchTo: -1}
	cfg.Nodes.Move(-1, cfg.Node)
	r.Reader = wire.NewReader(wire.ReaderConfig{
		Client:         cfg.Client,
		URL:            r.url,
		Header:         http.Header{"Authorization": {"Bearer " + cfg.Token}},
		From:           cfg.Start,
		MaxBackoff:     cfg.MaxBackoff,
		OnNotification: r.record,
		OnRetry:        r.retry,
	})
	return r
}

// Resume ends the current connection and reconnects with Last-Event-ID, to
// node (or, if node is negative, to a random node that is up, another one
// when there is a choice).
func (r *Reader) Resume(node int) {
	r.mu.Lock()
	if node < 0 {
		node = r.cfg.Nodes.Pick(r.node)
	}
	r.switchTo = node
	r.mu.Unlock()
	r.Reconnect()
}

// Stats returns the reader's counters.
func (r *Reader) Stats() ReaderStats {
	st := r.Reader.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReaderStats{ReaderStats: st, Node: r.node}
}

// Received returns copies of the seqs received, in the order they arrived,
// and when each was read (unix nanoseconds).
func (r *Reader) Received() (seqs, at []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs), slices.Clone(r.at)
}

// Run connects and reads until ctx ends.
func (r *Reader) Run(ctx context.Context) { _ = r.Reader.Run(ctx) }

// url is the stream of the node to connect to next.
func (r *Reader) url() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.switchTo >= 0 {
		r.cfg.Nodes.Move(r.node, r.switchTo)
		r.node, r.switchTo = r.switchTo, -1
	}
	return r.cfg.Nodes.URL(r.node) + StreamPath
}

func (r *Reader) record(d wire.Delivery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, d.Seq)
	r.at = append(r.at, d.At.UnixNano())
	return nil
}

// retry moves to another node after a failed attempt, or when the
// connection ended because the node is down; a Resume's node is kept.
func (r *Reader) retry(rt wire.Retry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.switchTo < 0 && (rt.Failures > 0 || !r.cfg.Nodes.Up(r.node)) {
		to := r.cfg.Nodes.Pick(r.node)
		r.cfg.Nodes.Move(r.node, to)
		r.node = to
	}
	return nil
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

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
