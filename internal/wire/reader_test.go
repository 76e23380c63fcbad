package wire_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/wire"
)

// streamServer answers each stream request with the next script, after
// recording its Last-Event-ID and Authorization; a script that returns
// leaves the connection to end, one that blocks holds it open.
type streamServer struct {
	*httptest.Server
	mu      sync.Mutex
	scripts []func(w http.ResponseWriter, r *http.Request)
	resumes []string
	auth    []string
}

func newStreamServer(t *testing.T, scripts ...func(w http.ResponseWriter, r *http.Request)) *streamServer {
	s := &streamServer{scripts: scripts}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.resumes = append(s.resumes, r.Header.Get("Last-Event-ID"))
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		n := len(s.resumes) - 1
		s.mu.Unlock()
		if n >= len(s.scripts) {
			http.Error(w, "no more", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		s.scripts[n](w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *streamServer) requests() (resumes, auth []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.resumes...), append([]string(nil), s.auth...)
}

func write(w http.ResponseWriter, events ...[]byte) {
	for _, e := range events {
		w.Write(e)
	}
	w.(http.Flusher).Flush()
}

func connected(heartbeat time.Duration) []byte {
	return wire.MessageEvent(wire.Message{Type: wire.TypeConnected, Data: wire.Connected{HeartbeatInterval: heartbeat.Milliseconds()}})
}

func note(seq int64) []byte {
	return wire.NotificationEvent(notify.Notification{ID: fmt.Sprintf("n%d", seq), Seq: seq, Message: "m", Severity: notify.SeverityLow})
}

// collector gathers what a reader's callbacks get.
type collector struct {
	mu       sync.Mutex
	seqs     []int64
	ids      []string
	types    []string
	retries  []wire.Retry
	malforms []error
}

func (c *collector) config(url string) wire.ReaderConfig {
	return wire.ReaderConfig{
		Client: http.DefaultClient, URL: func() string { return url }, From: -1,
		Header: http.Header{"Authorization": {"Bearer tok"}},
		OnNotification: func(d wire.Delivery) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.seqs, c.ids = append(c.seqs, d.Seq), append(c.ids, d.ID)
			return nil
		},
		OnMessage: func(m wire.Received) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.types = append(c.types, m.Type)
			return nil
		},
		OnMalformed: func(err error) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.malforms = append(c.malforms, err)
			return nil
		},
		OnRetry: func(r wire.Retry) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.retries = append(c.retries, r)
			return nil
		},
	}
}

func (c *collector) snapshot() collector {
	c.mu.Lock()
	defer c.mu.Unlock()
	return collector{seqs: append([]int64(nil), c.seqs...), ids: append([]string(nil), c.ids...),
		types: append([]string(nil), c.types...), retries: append([]wire.Retry(nil), c.retries...),
		malforms: append([]error(nil), c.malforms...)}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts r and returns a function that stops it and returns Run's error.
func run(r *wire.Reader) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

func TestReaderResumesAfterWhatItReceived(t *testing.T) {
	hold := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	srv := newStreamServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			write(w, wire.RetryField(20*time.Millisecond), connected(0), note(1), note(2),
				wire.HeartbeatEvent(time.Now()), wire.StatusEvent(time.Now(), wire.Status{Closing: "slow", Message: "behind"}))
		},
		func(w http.ResponseWriter, r *http.Request) {
			write(w, connected(0), note(3),
				[]byte("id: 4\ndata: {\"type\":\"notification\",\"data\":{\"id\":\"x\",\"seq\":5},\"notificationId\":\"x\"}\n\n"), // seq differs from the id
				[]byte("data: {\"type\":\"notification\",\"data\":{}}\n\n"))                                                       // no id
			hold(w, r)
		},
		func(w http.ResponseWriter, r *http.Request) { write(w, connected(0)); hold(w, r) },
	)
	var c collector
	r := wire.NewReader(c.config(srv.URL))
	stop := run(r)
	eventually(t, "the second connection", func() bool { return len(c.snapshot().seqs) == 3 && r.Stats().ProtocolErrors == 2 })
	select {
	case <-r.Connected():
	default:
		t.Error("Connected is not closed after a connection")
	}
	r.Reconnect()
	eventually(t, "the third connection", func() bool { return r.Stats().Connects == 3 })
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}

	got := c.snapshot()
	if fmt.Sprint(got.seqs) != "[1 2 3]" || fmt.Sprint(got.ids) != "[n1 n2 n3]" {
		t.Errorf("deliveries %v %v, want seqs 1 2 3 with their ids", got.seqs, got.ids)
	}
	if want := "[connected heartbeat status connected connected]"; fmt.Sprint(got.types) != want {
		t.Errorf("messages %v, want %s", got.types, want)
	}
	resumes, auth := srv.requests()
	if fmt.Sprint(resumes) != "[ 2 3]" {
		t.Errorf("Last-Event-ID of the requests %q, want none, then the last seq received", resumes)
	}
	for _, a := range auth {
		if a != "Bearer tok" {
			t.Errorf("Authorization %q", a)
		}
	}
	if len(got.retries) != 2 || !errors.Is(got.retries[0].Err, wire.ErrEnded) || got.retries[0].Failures != 0 || got.retries[0].Wait != 0 {
		t.Errorf("retries %+v: want an immediate one after the server ended the stream, then one for Reconnect", got.retries)
	}
	if len(got.malforms) != 2 {
		t.Errorf("malformed events reported: %v", got.malforms)
	}
	st := r.Stats()
	if st.Connects != 3 || st.Drops != 1 || st.Resumes != 1 || st.ConnectErrors != 0 || st.Received != 3 || st.LastSeq != 3 ||
		st.Heartbeats != 1 || st.CloseReasons["slow"] != 1 || st.ProtocolErrors != 2 || !strings.Contains(st.FirstError, "differs") {
		t.Errorf("stats %+v", st)
	}
}

func TestReaderBacksOffFromTheRetryField(t *testing.T) {
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request) {
		write(w, wire.RetryField(40*time.Millisecond), connected(0))
	}) // then 503s
	var c collector
	cfg := c.config(srv.URL)
	cfg.UseRetryField, cfg.MaxBackoff = true, 100*time.Millisecond
	r := wire.NewReader(cfg)
	stop := run(r)
	eventually(t, "four retries", func() bool { return len(c.snapshot().retries) >= 4 })
	stop()
	got := c.snapshot().retries
	// After the stream: the retry field; then doubling, capped; each
	// between half and all of it.
	for i, full := range []time.Duration{40, 80, 100, 100} {
		full *= time.Millisecond
		if rt := got[i]; rt.Failures != i || rt.Wait < full/2 || rt.Wait > full {
			t.Errorf("retry %d: %+v, want failures %d and a wait in [%s, %s]", i, rt, i, full/2, full)
		}
	}
	var se *wire.StatusError
	if !errors.As(got[1].Err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Errorf("a refused attempt's error %v, want the StatusError", got[1].Err)
	}
	if st := r.Stats(); st.ConnectErrors < 3 || st.Connects != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestReaderDropsASilentConnection(t *testing.T) {
	hold := func(w http.ResponseWriter, r *http.Request) { write(w, connected(0)); <-r.Context().Done() }
	srv := newStreamServer(t, hold, hold)
	var c collector
	cfg := c.config(srv.URL)
	cfg.Idle = 50 * time.Millisecond
	r := wire.NewReader(cfg)
	stop := run(r)
	eventually(t, "the reconnect", func() bool { return r.Stats().Connects == 2 })
	stop()
	if rt := c.snapshot().retries; len(rt) == 0 || !strings.Contains(rt[0].Err.Error(), "no data for 50ms") {
		t.Errorf("retries %+v, want one for the silence", rt)
	}
}

func TestReaderStopsWithACallbackError(t *testing.T) {
	srv := newStreamServer(t, func(w http.ResponseWriter, r *http.Request) {
		write(w, connected(0), note(1), note(2))
		<-r.Context().Done()
	})
	done := errors.New("enough")
	var c collector
	cfg := c.config(srv.URL)
	cfg.OnNotification = func(d wire.Delivery) error {
		if d.Seq == 2 {
			return done
		}
		return nil
	}
	err := wire.NewReader(cfg).Run(context.Background())
	if !errors.Is(err, done) {
		t.Errorf("Run: %v, want the callback's error", err)
	}
}
