package stream_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/wire"
)

var quiet = slog.New(slog.DiscardHandler)

// plainWriter hides http.Hijacker (as HTTP/2 or a proxy's writer would),
// keeping Flush and write deadlines.
type plainWriter struct{ w http.ResponseWriter }

func (p plainWriter) Header() http.Header         { return p.w.Header() }
func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }
func (p plainWriter) FlushError() error           { return http.NewResponseController(p.w).Flush() }
func (p plainWriter) SetWriteDeadline(t time.Time) error {
	return http.NewResponseController(p.w).SetWriteDeadline(t)
}

// TestStreamDetachedAndNot: a stream whose connection can be taken over
// outlives its handler (the request's goroutine returns at once) and one
// whose connection cannot stays in its handler; both say the same thing
// with the same headers: the retry line, connected, live events in order,
// heartbeats, and the reason the stream ends.
func TestStreamDetachedAndNot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wrap     func(http.ResponseWriter) http.ResponseWriter
		detached bool
	}{
		{"detached", func(w http.ResponseWriter) http.ResponseWriter { return w }, true},
		{"in the handler", func(w http.ResponseWriter) http.ResponseWriter { return plainWriter{w} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hub.New(hub.Config{})
			srv, err := stream.NewServer(h, nil, stream.Config{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			var returned atomic.Int32
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "abc")
				if err := srv.Serve(r.Context(), tc.wrap(w), notify.Identity{UserID: "alice", Roles: []string{"OPS"}}, stream.Resume{}); err != nil {
					t.Errorf("Serve: %v", err)
				}
				returned.Add(1)
			}))
			defer hs.Close()
			s, resp := open(t, hs.URL)
			defer s.Close()
			for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-transform",
				"X-Accel-Buffering": "no", "X-Request-Id": "abc"} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if ev := next(t, s); !strings.Contains(string(ev.Data), `"type":"connected"`) {
				t.Fatalf("first event %q, want connected", ev.Data)
			}
			testkit.Eventually(t, 10*time.Second, "the condition", func() bool { return h.Len() == 1 })
			if tc.detached {
				testkit.Eventually(t, 10*time.Second, "the condition", func() bool { return returned.Load() == 1 }) // while the stream stays open
			} else if returned.Load() != 0 {
				t.Error("the handler returned while its stream is open")
			}
			for seq := int64(1); seq <= 3; seq++ {
				n := notify.Notification{ID: "n", Seq: seq, Message: "m", Severity: notify.SeverityLow, CreatedAt: time.Now()}
				f := hub.Frame{Seq: n.Seq, Data: wire.NotificationEvent(n)}
				h.Publish(&hub.Event{Frame: f, Target: notify.Target{UserID: "alice"}})
			}
			h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.Now())})
			for seq := 1; seq <= 3; seq++ {
				if ev := next(t, s); ev.ID != string(rune('0'+seq)) {
					t.Fatalf("event %q %q, want id %d", ev.ID, ev.Data, seq)
				}
			}
			if ev := next(t, s); !strings.Contains(string(ev.Data), `"type":"heartbeat"`) {
				t.Fatalf("event %q, want a heartbeat", ev.Data)
			}
			h.CloseWhere(func(notify.Identity) bool { return true }, hub.ReasonShutdown)
			if ev := next(t, s); !strings.Contains(string(ev.Data), `"closing":"shutdown"`) {
				t.Fatalf("event %q, want the shutdown status", ev.Data)
			}
			if _, err := s.Next(); err != io.EOF {
				t.Fatalf("after the shutdown status: %v, want the end of the stream", err)
			}
			testkit.Eventually(t, 10*time.Second, "the condition", func() bool { return h.Len() == 0 && returned.Load() == 1 })
		})
	}
}

// TestDetachedStreamEndsWhenClientLeaves: the stream learns that its client
// closed the connection without writing to it, and unsubscribes; Run's end
// closes what is left. Parked, and served live where the connection has
// no descriptor.
func TestDetachedStreamEndsWhenClientLeaves(t *testing.T) {
	for _, l := range listeners {
		t.Run(l.name, func(t *testing.T) {
			h, srv, hs := quietServerOn(t, notify.Identity{UserID: "bob"}, l.wrap)
			s, _ := open(t, hs.URL)
			next(t, s)
			testkit.Eventually(t, 10*time.Second, "the condition", func() bool { return h.Len() == 1 })
			s.Close()
			testkit.Eventually(t, 10*time.Second, "the condition", func() bool { return h.Len() == 0 })

			// Run's end closes what is left and waits for it.
			s2, _ := open(t, hs.URL)
			next(t, s2)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { srv.Run(ctx); close(done) }()
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if n := h.Len(); n != 0 {
				t.Errorf("%d streams still subscribed after Run returned", n)
			}
			s2.Close()
		})
	}
}

// listeners are the two ways a detached stream is served: parked where
// the system lets the poller watch its connection (park.go), and by a
// goroutine of its own (liveconn.go) over a connection without a
// descriptor, as a TLS connection is.
var listeners = []struct {
	name string
	wrap func(net.Listener) net.Listener
}{
	{"parked", nil},
	{"without a descriptor", func(l net.Listener) net.Listener { return noDescriptorListener{l} }},
}

// noDescriptorListener accepts connections that are only net.Conns, as a
// TLS listener's are: nothing reaches their descriptor.
type noDescriptorListener struct{ net.Listener }

func (l noDescriptorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

// quietServer serves streams of id on a hub of their own, with heartbeats
// and the connection timeout out of the way: what a test then reads is what
// it made happen. The server closes when the test ends.
func quietServer(t *testing.T, id notify.Identity) (*hub.Hub, *stream.Server, *httptest.Server) {
	t.Helper()
	return quietServerOn(t, id, nil)
}

// quietServerOn is quietServer with its listener wrapped by wrap (nil: as
// it is).
func quietServerOn(t *testing.T, id notify.Identity, wrap func(net.Listener) net.Listener) (*hub.Hub, *stream.Server, *httptest.Server) {
	t.Helper()
	h := hub.New(hub.Config{})
	srv, err := stream.NewServer(h, nil, stream.Config{HeartbeatInterval: time.Hour, ConnTimeout: 2 * time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(r.Context(), w, id, stream.Resume{})
	}))
	if wrap != nil {
		hs.Listener = wrap(hs.Listener)
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return h, srv, hs
}

func open(t *testing.T, url string) (*wire.Stream, *http.Response) {
	t.Helper()
	var resp *http.Response
	client := &http.Client{Transport: &captureTransport{resp: &resp}}
	s, err := wire.Open(context.Background(), client, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, resp
}

// captureTransport keeps the response for its headers.
type captureTransport struct{ resp **http.Response }

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	*c.resp = resp
	return resp, err
}

// next reads the stream's next event; none within 10 s fails the test (a
// lost wake would otherwise hang it).
func next(t *testing.T, s *wire.Stream) wire.Event {
	t.Helper()
	type read struct {
		ev  wire.Event
		err error
	}
	got := make(chan read, 1)
	go func() {
		ev, err := s.Next()
		got <- read{ev, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.ev
	case <-time.After(10 * time.Second):
		s.Close() // ends the read
		t.Fatal("no event within 10 s")
		return wire.Event{}
	}
}
