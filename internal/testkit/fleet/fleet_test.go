package fleet

import (
	"cmp"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/wire"
)

func TestDeltaCodecRoundTrips(t *testing.T) {
	in := []int64{5, 7, 7, 12, 1_000_000}
	enc := deltaEncode(in)
	if want := []int64{5, 2, 0, 5, 999_988}; !slices.Equal(enc, want) {
		t.Fatalf("deltaEncode(%v) = %v, want %v", in, enc, want)
	}
	if got := deltaDecode(enc); !slices.Equal(got, in) {
		t.Errorf("deltaDecode(deltaEncode(%v)) = %v", in, got)
	}
	if got := deltaDecode(deltaEncode(nil)); len(got) != 0 {
		t.Errorf("empty round trip = %v", got)
	}
}

// stubTransport answers every request with a stream body, or with err.
type stubTransport struct {
	body   string
	status int // default 200
	err    error
	calls  int
}

func (s *stubTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	status := cmp.Or(s.status, http.StatusOK)
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(s.body)), Request: req}, nil
}

func streamRequest(t *testing.T, base string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+cluster.StreamPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestPacerFailsAtOnceOnANodeOutOfRotation(t *testing.T) {
	nodes := cluster.NewNodes([]string{"http://127.0.0.2:1", "http://127.0.0.3:1"})
	nodes.SetDown(0, true)
	stub := &stubTransport{body: "data: {}\n\n"}
	p := newPacer(stub, nodes, Browser{InitialMs: 1000, MaxMs: 30_000, ResetAfterMs: 60_000})
	if _, err := p.RoundTrip(streamRequest(t, nodes.URL(0))); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("request to a node out of rotation: %v, want ErrNodeDown", err)
	}
	if stub.calls != 0 || p.Stats().Backoffs != 0 || len(p.Stats().Sent) != 0 {
		t.Errorf("it reached the transport (%d calls), counted as a failure (%d backoffs) or as sent (%d)", stub.calls, p.Stats().Backoffs, len(p.Stats().Sent))
	}
}

func TestPacerWaitsAsTheClosingStatusAsks(t *testing.T) {
	nodes := cluster.NewNodes([]string{"http://127.0.0.2:1"})
	// The closing status straddles two reads.
	stub := &stubTransport{body: `data: {"type":"connected"}` + "\n\n" + `data: {"type":"status","reconnectAfter":250}` + "\n\n"}
	p := newPacer(stub, nodes, Browser{InitialMs: 1000, MaxMs: 30_000, ResetAfterMs: 60_000})
	resp, err := p.RoundTrip(streamRequest(t, nodes.URL(0)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 60) // ends inside the reconnectAfter key
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
	st := p.Stats()
	if len(st.Sent) != 1 || len(st.Opens) != 1 || len(st.Connected) != 1 {
		t.Errorf("sent %d, opens %d, connected %d, want 1, 1 and 1", len(st.Sent), len(st.Opens), len(st.Connected))
	} else if st.Sent[0] > st.Opens[0] {
		t.Errorf("sent at %d µs, after it was answered (%d µs)", st.Sent[0], st.Opens[0])
	}
	if st.Spread != 1 || st.SpreadMaxMs != 250 || st.Backoffs != 0 {
		t.Errorf("spread %d (longest %d ms), backoffs %d; want one 250 ms wait and no backoff", st.Spread, st.SpreadMaxMs, st.Backoffs)
	}
	if wait := time.Until(p.due); wait <= 100*time.Millisecond || wait > 250*time.Millisecond {
		t.Errorf("next request due in %s, want just under 250ms", wait)
	}
}

func TestPacerBacksOffWithinTheCeilingAfterAFailure(t *testing.T) {
	nodes := cluster.NewNodes([]string{"http://127.0.0.2:1"})
	stub := &stubTransport{status: http.StatusServiceUnavailable}
	p := newPacer(stub, nodes, Browser{InitialMs: 40, MaxMs: 30_000, ResetAfterMs: 60_000})
	if resp, err := p.RoundTrip(streamRequest(t, nodes.URL(0))); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a 503 came back as %v, %v", resp, err)
	}
	if p.Stats().Backoffs != 1 {
		t.Fatalf("backoffs %d, want 1", p.Stats().Backoffs)
	}
	if wait := time.Until(p.due); wait > 40*time.Millisecond {
		t.Errorf("first backoff %s, above its 40ms ceiling", wait)
	}
	// The next attempt waits for its turn, then fails again with the
	// ceiling doubled.
	start := time.Now()
	due := p.due
	_, _ = p.RoundTrip(streamRequest(t, nodes.URL(0)))
	if time.Now().Before(due) {
		t.Errorf("the second attempt went out %s early", due.Sub(time.Now()))
	}
	if wait := time.Until(p.due); p.Stats().Backoffs != 2 || wait > 80*time.Millisecond {
		t.Errorf("after the second failure: %d backoffs, next in %s (ceiling 80ms); waited %s", p.Stats().Backoffs, wait, time.Since(start))
	}
}

// A refused connection is what a load balancer retries on the next node
// by itself: the reader is told the node is down, and no backoff follows.
func TestPacerTreatsARefusedConnectionAsANodeDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close() // nothing listens there now: connections are refused
	nodes := cluster.NewNodes([]string{url})
	p := newPacer(http.DefaultTransport, nodes, Browser{InitialMs: 40, MaxMs: 30_000, ResetAfterMs: 60_000})
	_, err = p.RoundTrip(streamRequest(t, url))
	if !errors.Is(err, ErrNodeDown) || wire.FailureKind(err) != "node out of rotation (connection refused)" {
		t.Fatalf("refused connection: %v (%q), want ErrNodeDown saying it was refused", err, wire.FailureKind(err))
	}
	if st := p.Stats(); st.Backoffs != 0 || !p.due.IsZero() {
		t.Errorf("%d backoffs, next request due %s; want none", st.Backoffs, p.due)
	}
}

func TestFleetStatsSumsTheProcesses(t *testing.T) {
	procWith := func(s *Stats) *proc {
		p := &proc{}
		if s != nil {
			p.last.Store(s)
		}
		return p
	}
	a := &Stats{Open: 3, Received: 10, Drops: 1, BeatsMin: 4, NoBeats: 0, MaxBeatGapMs: 900, RSS: 100, CloseReasons: map[string]int{"shutdown": 2}}
	b := &Stats{Open: 2, Received: 5, Drops: 2, BeatsMin: 2, NoBeats: 1, MaxBeatGapMs: 1200, RSS: 50}
	got := (&Fleet{procs: []*proc{procWith(a), procWith(b)}}).Stats()
	want := Stats{Open: 5, Received: 15, Drops: 3, BeatsMin: 2, NoBeats: 1, MaxBeatGapMs: 1200, RSS: 150}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if got := (&Fleet{procs: []*proc{procWith(a), procWith(nil)}}).Stats(); got.BeatsMin != 0 || got.Open != 3 {
		t.Errorf("with a silent process: BeatsMin %d, Open %d; want 0 and 3", got.BeatsMin, got.Open)
	}
	if got := (&Fleet{}).Stats(); !reflect.DeepEqual(got, Stats{}) {
		t.Errorf("no processes: %+v", got)
	}
}
