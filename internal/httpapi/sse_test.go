package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/wire"
)

// event is one SSE event exactly as it came over the wire.
type event struct {
	raw   string   // every byte of the event, its blank line included
	lines []string // its lines, without line ends
	id    string   // the id field ("" when absent)
	hasID bool
	msg   wire.Received
}

// dataMap decodes the message's data as an object.
func dataMap(t testing.TB, m wire.Received) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatalf("message data %s is not an object: %v", m.Data, err)
	}
	return d
}

// rawStream reads one stream with net/http and bufio, so the tests see the
// exact bytes the server wrote.
type rawStream struct {
	resp   *http.Response
	prefix chan []byte // the first bytes read, once
	events chan event
	cancel context.CancelFunc
	done   chan struct{}
	err    error   // why reading ended; valid after done
	log    []event // every event next returned, in order
	name   string  // names the stream in failures
}

// open requests the stream at path (query included) with h. It returns the
// response of a non-200 answer, with its body read, and a nil stream.
func (s *server) open(t testing.TB, path string, h http.Header) (*rawStream, reply) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		cancel()
		t.Fatalf("build stream request: %v", err)
	}
	maps.Copy(req.Header, h)
	resp, err := s.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open stream %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, reply{status: resp.StatusCode, header: resp.Header, body: b}
	}
	rs := &rawStream{resp: resp, prefix: make(chan []byte, 1), events: make(chan event, 1024),
		cancel: cancel, done: make(chan struct{})}
	go rs.read()
	t.Cleanup(rs.close)
	return rs, reply{status: resp.StatusCode, header: resp.Header}
}

// mustOpen opens a stream for token, failing on anything but 200.
func (s *server) mustOpen(t testing.TB, path, token string, kv ...string) *rawStream {
	t.Helper()
	rs, r := s.open(t, path, bearer(token, kv...))
	if rs == nil {
		t.Fatalf("stream %s answered %d: %s", path, r.status, r.body)
	}
	return rs
}

func (rs *rawStream) read() {
	defer close(rs.done)
	defer close(rs.events)
	br := bufio.NewReader(rs.resp.Body)
	b, _ := br.Peek(64) // what is there if the stream ends sooner
	rs.prefix <- append([]byte(nil), b...)
	var ev event
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			rs.err = err
			return
		}
		ev.raw += line
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			ev.lines = append(ev.lines, line)
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				ev.id, ev.hasID = v, true
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				if err := json.Unmarshal([]byte(v), &ev.msg); err != nil {
					ev.msg.Type = "<undecodable: " + err.Error() + ">"
				}
			}
			continue
		}
		rs.events <- ev
		ev = event{}
	}
}

func (rs *rawStream) close() {
	rs.cancel()
	rs.resp.Body.Close()
	<-rs.done
}

// next returns the next event, failing the test if none comes within timeout.
func (rs *rawStream) next(t testing.TB, timeout time.Duration) event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ev, ok := <-rs.events:
		if !ok {
			<-rs.done
			t.Fatalf("%sstream ended: %v", rs.name, rs.err)
		}
		rs.log = append(rs.log, ev)
		return ev
	case <-timer.C:
		t.Fatalf("%sno event within %s", rs.name, timeout)
	}
	return event{}
}

// nextOfType skips events of other types (heartbeats) until one of typ.
func (rs *rawStream) nextOfType(t testing.TB, typ string, timeout time.Duration) event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := rs.next(t, time.Until(deadline))
		if ev.msg.Type == typ {
			return ev
		}
	}
}

// skipHeartbeats returns the next event that is not a heartbeat.
func (rs *rawStream) skipHeartbeats(t testing.TB, timeout time.Duration) event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := rs.next(t, time.Until(deadline))
		if ev.msg.Type != "heartbeat" {
			return ev
		}
	}
}

// connected reads the opening event, the connected message with the retry:
// line, and returns it.
func (rs *rawStream) connected(t testing.TB) event {
	t.Helper()
	ev := rs.next(t, 5*time.Second)
	if len(ev.lines) != 2 || !strings.HasPrefix(ev.lines[0], "retry: ") || ev.msg.Type != "connected" {
		t.Fatalf("first event %q, want the connected message carrying the retry: line", ev.raw)
	}
	return ev
}
