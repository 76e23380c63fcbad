package apptest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/wire"
)

// Message is a decoded stream message. Notification decodes its data as a
// test wants it: the zero value when it is not a notification.
type Message struct{ wire.Received }

// Notification decodes m's data as a notification.
func (m Message) Notification() wire.Notification {
	n, _ := m.Received.Notification()
	return n
}

// Reader consumes one stream in the background.
type Reader struct {
	t      testing.TB
	stream *wire.Stream
	cancel context.CancelFunc
	msgs   chan Message
	done   chan struct{}
	err    error
}

// Open opens a stream at baseURL with token, resuming after lastEventID if
// it is not empty. It fails the test on a non-200 answer.
func Open(t testing.TB, baseURL, token, lastEventID string) *Reader {
	t.Helper()
	r, err := TryOpen(baseURL, token, lastEventID)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	r.t = t
	t.Cleanup(r.Close)
	return r
}

// TryOpen is Open returning the error instead of failing.
func TryOpen(baseURL, token, lastEventID string) (*Reader, error) {
	ctx, cancel := context.WithCancel(context.Background())
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		h.Set("Last-Event-ID", lastEventID)
	}
	s, err := wire.Open(ctx, http.DefaultClient, baseURL+"/api/notifications/ws", h)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &Reader{stream: s, cancel: cancel, msgs: make(chan Message, 100000), done: make(chan struct{})}
	go r.read()
	return r, nil
}

func (r *Reader) read() {
	defer close(r.done)
	defer close(r.msgs)
	for {
		ev, err := r.stream.Next()
		if err != nil {
			r.err = err
			return
		}
		m, err := wire.Decode(ev)
		if err != nil {
			r.err = err
			return
		}
		m.Retry = r.stream.Retry()
		r.msgs <- Message{m}
	}
}

// Close ends the stream.
func (r *Reader) Close() {
	r.cancel()
	r.stream.Close()
	<-r.done
}

// Next returns the next message, or ok=false if the stream ended or nothing
// came within timeout.
func (r *Reader) Next(timeout time.Duration) (m Message, ok bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m, ok = <-r.msgs:
		return m, ok
	case <-t.C:
		return Message{}, false
	}
}

// NextOfType skips messages of other types (heartbeats, status) until one of
// typ arrives.
func (r *Reader) NextOfType(typ string, timeout time.Duration) (Message, bool) {
	deadline := time.Now().Add(timeout)
	for {
		m, ok := r.Next(time.Until(deadline))
		if !ok || m.Type == typ {
			return m, ok
		}
	}
}

// Notifications collects n notification messages, failing the test if they
// do not arrive within timeout.
func (r *Reader) Notifications(n int, timeout time.Duration) []Message {
	r.t.Helper()
	out := make([]Message, 0, n)
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		m, ok := r.NextOfType("notification", time.Until(deadline))
		if !ok {
			r.t.Fatalf("got %d of %d notifications before timeout or end of stream (err: %v)", len(out), n, r.Err())
		}
		out = append(out, m)
	}
	return out
}

// Ended reports whether the server closed the stream within timeout.
func (r *Reader) Ended(timeout time.Duration) bool {
	select {
	case <-r.done:
		return errors.Is(r.err, io.EOF) || r.err != nil
	case <-time.After(timeout):
		return false
	}
}

// Err is why the stream ended (nil while open).
func (r *Reader) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// SeqOf parses an event id.
func SeqOf(m Message) int64 {
	n, _ := strconv.ParseInt(m.EventID, 10, 64)
	return n
}
