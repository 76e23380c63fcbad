package fleet

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/wire"
)

// cluster.Reader reconnects as soon as a connection ends. A browser does
// not: notifyd's browser client (web/static/notify-client.js) closes its
// EventSource on any error and opens a new one after an exponential
// backoff with full jitter (uniform in [0, initial·2^attempt], capped,
// forgotten once a connection has stayed open for a minute), and after a
// closing status that carries reconnectAfter (a node shutting down, which
// also sends the same delay as the SSE retry field) it waits exactly that
// long. With a Browser plan, a client process gives each reader a pacer,
// an http.RoundTripper between the reader and the shared transport that
// holds the reader's next stream request until the delay the browser
// client would have waited has passed. The reader itself is unchanged: it
// still chooses the node and sends Last-Event-ID.
//
// A request to a node marked down (Fleet.SetNodeDown) fails at once,
// without a connection and without counting as a failure: a caller takes a
// node out of rotation when it kills or stops it, as a load balancer in
// front of the nodes would, and the reader then picks another node. A
// request that fails before any answer (refused, reset) is treated the
// same way, for the moment between a node's death and the client process
// hearing of it: a load balancer retries such a request on the next node
// at once (nginx's proxy_next_upstream, on by default for errors before
// the response header), so a browser behind it never sees the failure and
// never backs off for it. An answer that is not 200 is the browser's to
// back off from.

// Browser is the browser client's backoff, in milliseconds (its defaults:
// 1 s, 30 s, 60 s): the first ceiling, the largest, and how long a
// connection must stay open for the backoff to start again.
type Browser struct {
	InitialMs    int64 `json:"initial_ms"`
	MaxMs        int64 `json:"max_ms"`
	ResetAfterMs int64 `json:"reset_after_ms"`
}

// ErrNodeDown is the error of a request to a node out of rotation.
var ErrNodeDown = errors.New("node out of rotation")

// retriedElsewhere is a failure a load balancer would have retried on
// another node: it is ErrNodeDown, and says what failed.
type retriedElsewhere struct{ why string }

func (e retriedElsewhere) Error() string        { return ErrNodeDown.Error() + " (" + e.why + ")" }
func (e retriedElsewhere) Is(target error) bool { return target == ErrNodeDown }

// pacer paces one reader's stream requests (see above).
type pacer struct {
	next  http.RoundTripper
	nodes *cluster.Nodes
	hosts map[string]int // node host:port -> index
	model Browser

	mu      sync.Mutex
	due     time.Time // no stream request before this
	attempt int       // failures not yet forgiven
	stats   PaceStats
}

// PaceStats is what a reader's pacer did: when each connection answered
// 200 and when its connected message arrived (unix microseconds; a stream
// answers before it waits for its turn at the database, and says connected
// after it), and the delays it imposed.
type PaceStats struct {
	// Sent: when a stream request went out to a node in rotation, once the
	// pacer's wait was over (the dead node's refusal included).
	Sent      []int64 `json:"sent_us,omitempty"`
	Opens     []int64 `json:"opens_us,omitempty"`
	Connected []int64 `json:"connected_us,omitempty"`
	// Spread counts the waits a closing status asked for (reconnectAfter),
	// SpreadMaxMs the longest; Backoffs the jittered waits after a lost
	// connection or a failed attempt.
	Spread      int   `json:"spread"`
	SpreadMaxMs int64 `json:"spread_max_ms"`
	Backoffs    int   `json:"backoffs"`
}

func newPacer(next http.RoundTripper, nodes *cluster.Nodes, model Browser) *pacer {
	p := &pacer{next: next, nodes: nodes, model: model, hosts: map[string]int{}}
	for i := range nodes.Len() {
		p.hosts[hostOf(nodes.URL(i))] = i
	}
	return p
}

func hostOf(url string) string {
	_, rest, _ := bytes.Cut([]byte(url), []byte("://"))
	return string(rest)
}

// Stats returns a copy of the pacer's record.
func (p *pacer) Stats() PaceStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Sent = append([]int64(nil), s.Sent...)
	s.Opens = append([]int64(nil), s.Opens...)
	s.Connected = append([]int64(nil), s.Connected...)
	return s
}

func (p *pacer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != cluster.StreamPath {
		return p.next.RoundTrip(req)
	}
	p.mu.Lock()
	due := p.due
	p.mu.Unlock()
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
	if i, ok := p.hosts[req.URL.Host]; ok && !p.nodes.Up(i) {
		return nil, ErrNodeDown
	}
	p.mu.Lock()
	p.stats.Sent = append(p.stats.Sent, time.Now().UnixMicro())
	p.mu.Unlock()
	resp, err := p.next.RoundTrip(req)
	if err != nil && req.Context().Err() == nil {
		return nil, retriedElsewhere{why: wire.FailureKind(err)}
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		if req.Context().Err() == nil {
			p.failed()
		}
		return resp, err
	}
	now := time.Now()
	p.mu.Lock()
	p.stats.Opens = append(p.stats.Opens, now.UnixMicro())
	p.mu.Unlock()
	resp.Body = &watchedBody{ReadCloser: resp.Body, p: p, req: req, opened: now}
	return resp, nil
}

// failed schedules the next attempt after the backoff's next delay.
func (p *pacer) failed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ceil := min(p.model.MaxMs, p.model.InitialMs<<min(p.attempt, 20))
	delay := time.Duration(rand.Int64N(max(ceil, 0)+1)) * time.Millisecond
	p.attempt++
	p.due = time.Now().Add(delay)
	p.stats.Backoffs++
}

// ended is called once per connection, when its body ends.
func (p *pacer) ended(opened time.Time, deliberate bool, reconnectAfter int64) {
	if deliberate { // the reader resumed on purpose (or is stopping): no wait
		return
	}
	if time.Since(opened) >= time.Duration(p.model.ResetAfterMs)*time.Millisecond {
		p.mu.Lock()
		p.attempt = 0
		p.mu.Unlock()
	}
	if reconnectAfter < 0 {
		p.failed()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.due = time.Now().Add(time.Duration(reconnectAfter) * time.Millisecond)
	p.stats.Spread++
	p.stats.SpreadMaxMs = max(p.stats.SpreadMaxMs, reconnectAfter)
}

// watchedBody looks for the closing status's reconnectAfter in the stream
// and tells the pacer when the stream ends.
type watchedBody struct {
	io.ReadCloser
	p      *pacer
	req    *http.Request
	opened time.Time
	once   sync.Once
	tail   []byte // the end of the previous read: a key may straddle reads
	after  int64  // reconnectAfter seen, in ms; -1: none
	seen   bool
	hello  bool // the connected message has arrived
}

var (
	reconnectKey = []byte(`"reconnectAfter":`)
	connectedKey = []byte(`{"type":"connected"`)
)

func (b *watchedBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.scan(buf[:n])
	}
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *watchedBody) scan(chunk []byte) {
	if !b.hello && bytes.Contains(chunk, connectedKey) { // first in the stream, after the retry line
		b.hello = true
		b.p.mu.Lock()
		b.p.stats.Connected = append(b.p.stats.Connected, time.Now().UnixMicro())
		b.p.mu.Unlock()
	}
	if len(b.tail) > 0 { // a key or number that straddles two reads
		b.find(append(b.tail, chunk[:min(len(chunk), 32)]...))
	}
	b.find(chunk)
	b.tail = append(b.tail[:0], chunk[max(0, len(chunk)-len(reconnectKey)-12):]...)
}

// find reads the last complete reconnectAfter in hay.
func (b *watchedBody) find(hay []byte) {
	i := bytes.LastIndex(hay, reconnectKey)
	if i < 0 {
		return
	}
	rest := hay[i+len(reconnectKey):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j > 0 && j < len(rest) { // the number is complete
		if v, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
			b.after, b.seen = v, true
		}
	}
}

func (b *watchedBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

func (b *watchedBody) end() {
	b.once.Do(func() {
		after := int64(-1)
		if b.seen {
			after = b.after
		}
		b.p.ended(b.opened, b.req.Context().Err() != nil, after)
	})
}
