package stream_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestIdleDetachedStreamHoldsNoGoroutine: an open detached stream that has
// nothing to write holds no goroutine of the server's (a goroutine's stack
// was more than a quarter of an idle stream's memory; park.go), and still
// writes what the hub queues.
func TestIdleDetachedStreamHoldsNoGoroutine(t *testing.T) {
	h, srv, hs := quietServer(t, notify.Identity{UserID: "bob"})
	const n = 20
	// The client's goroutines are counted once, with one stream open (and
	// the server's poller running); each further stream adds the client's
	// two (net/http's read and write loops) and none of the server's.
	first, _ := open(t, hs.URL)
	defer first.Close()
	next(t, first)
	testkit.Eventually(t, 10*time.Second, "the first stream is subscribed", func() bool { return h.Len() == 1 })
	settle := func() int {
		time.Sleep(100 * time.Millisecond) // handlers and net/http's goroutines end
		return runtime.NumGoroutine()
	}
	before := settle()
	streams := make([]*wire.Stream, n)
	for i := range streams {
		streams[i], _ = open(t, hs.URL)
		defer streams[i].Close()
		next(t, streams[i])
	}
	testkit.Eventually(t, 10*time.Second, "every stream is subscribed", func() bool { return h.Len() == n+1 })
	testkit.Eventually(t, 10*time.Second, "every stream is parked", func() bool { return stream.Parked(srv) == n+1 })
	perStream := float64(settle()-before) / n
	t.Logf("%.2f goroutines a stream, client and server", perStream)
	if perStream > 2.5 {
		t.Fatalf("%.1f goroutines a stream (client and server), want 2: an idle detached stream holds none of the server's", perStream)
	}
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.Now())})
	for _, s := range streams {
		if ev := next(t, s); !strings.Contains(string(ev.Data), `"type":"heartbeat"`) {
			t.Fatalf("event %q, want a heartbeat", ev.Data)
		}
	}
}

// TestParkedStreamsUnderManyWakes: events published as fast as the hub
// takes them, to streams whose clients read them, arrive on every stream
// exactly once and in order, while every publish wakes every stream (a
// wake finds its stream parked, being written, or about to park).
func TestParkedStreamsUnderManyWakes(t *testing.T) {
	h, _, hs := quietServer(t, notify.Identity{UserID: "dana"})
	const streams, events = 8, 400
	readers := make([]*wire.Stream, streams)
	for i := range readers {
		readers[i], _ = open(t, hs.URL)
		defer readers[i].Close()
		next(t, readers[i])
	}
	testkit.Eventually(t, 10*time.Second, "every stream is subscribed", func() bool { return h.Len() == streams })
	got := make(chan error, streams)
	for _, r := range readers {
		go func() {
			for seq := 1; seq <= events; seq++ {
				ev, err := r.Next()
				if err != nil {
					got <- err
					return
				}
				if ev.ID != strconv.Itoa(seq) {
					got <- fmt.Errorf("event %q where seq %d was due", ev.ID, seq)
					return
				}
			}
			got <- nil
		}()
	}
	for seq := int64(1); seq <= events; seq++ {
		n := notify.Notification{ID: "n", Seq: seq, Message: "m", Severity: notify.SeverityLow, CreatedAt: time.Now()}
		h.Publish(&hub.Event{Frame: hub.Frame{Seq: seq, Data: wire.NotificationEvent(n)}, Target: notify.Target{UserID: "dana"}})
		if seq%50 == 0 {
			time.Sleep(time.Millisecond) // let some streams park between bursts
		}
	}
	for range streams {
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a stream did not get every event")
		}
	}
}

// TestParkedStreamDropsWhatItsClientSends: a client that writes to its
// stream's connection (a stream takes no requests) keeps its stream, and
// leaving is still noticed; when the last parked stream ends the server
// holds no poller.
func TestParkedStreamDropsWhatItsClientSends(t *testing.T) {
	h, srv, hs := quietServer(t, notify.Identity{UserID: "erin"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	readUntil := func(want string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading until %q: %v", want, err)
			}
			if strings.Contains(line, want) {
				return
			}
		}
	}
	readUntil(`"type":"connected"`)
	testkit.Eventually(t, 10*time.Second, "the stream is parked", func() bool { return stream.Parked(srv) == 1 })
	for range 3 { // more than one read's worth, in pieces
		if _, err := conn.Write([]byte(strings.Repeat("x", 100))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.Now())})
	readUntil(`"type":"heartbeat"`)
	if h.Len() != 1 {
		t.Fatalf("%d streams subscribed after the client wrote, want 1", h.Len())
	}
	conn.Close()
	testkit.Eventually(t, 10*time.Second, "the stream is unsubscribed", func() bool { return h.Len() == 0 })
	testkit.Eventually(t, 10*time.Second, "the poller stops", func() bool { return !stream.PollerRunning(srv) })
}

// TestAbandonedPollerEndsItsStreams: a poller whose epoll wait fails can no
// longer tell its streams that their clients left, so they end (their
// clients reconnect and resume); a stream opened after it is watched by a
// new one, which notices its client leaving.
func TestAbandonedPollerEndsItsStreams(t *testing.T) {
	h, srv, hs := quietServer(t, notify.Identity{UserID: "frank"})
	first, _ := open(t, hs.URL)
	defer first.Close()
	next(t, first) // connected
	testkit.Eventually(t, 10*time.Second, "the stream is parked", func() bool { return stream.Parked(srv) == 1 })
	stream.AbandonPoller(srv)
	for {
		if _, err := first.Next(); err != nil {
			break // ended: its client would resume elsewhere or here
		}
	}
	testkit.Eventually(t, 10*time.Second, "the stream is unsubscribed", func() bool { return h.Len() == 0 })
	second, _ := open(t, hs.URL)
	next(t, second) // connected
	testkit.Eventually(t, 10*time.Second, "the new stream is parked", func() bool { return stream.Parked(srv) == 1 })
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.Now())})
	if ev := next(t, second); !strings.Contains(string(ev.Data), `"type":"heartbeat"`) {
		t.Fatalf("got %s, want the heartbeat", ev.Data)
	}
	second.Close()
	testkit.Eventually(t, 10*time.Second, "the new stream's leaving is noticed", func() bool { return h.Len() == 0 })
	testkit.Eventually(t, 10*time.Second, "the poller stops", func() bool { return !stream.PollerRunning(srv) })
}

// TestWakeWhileWritingIsNotLost: a frame queued while the stream's
// goroutine writes the previous ones (its wake finds it running) is
// written by that goroutine before it parks, not left for the next wake.
// The goroutine is held between taking the first frame and writing it, so
// the second one's wake always comes at that moment.
func TestWakeWhileWritingIsNotLost(t *testing.T) {
	h := hub.New(hub.Config{})
	srv, err := stream.NewServer(h, nil, stream.Config{HeartbeatInterval: time.Hour, ConnTimeout: 2 * time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	taken, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	stream.OnTookFrames(srv, func(n int) {
		if n > 0 {
			once.Do(func() { close(taken); <-release })
		}
	})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(r.Context(), w, notify.Identity{UserID: "gina"}, stream.Resume{})
	}))
	defer hs.Close()
	s, _ := open(t, hs.URL)
	defer s.Close()
	next(t, s) // connected
	testkit.Eventually(t, 10*time.Second, "the stream is parked", func() bool { return stream.Parked(srv) == 1 })
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.UnixMilli(1))})
	select {
	case <-taken:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's goroutine never took the first frame")
	}
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.UnixMilli(2))}) // its wake finds the goroutine running
	close(release)
	for _, want := range []string{`"timestamp":1}`, `"timestamp":2}`} {
		if ev := next(t, s); !strings.Contains(string(ev.Data), want) { // a lost wake: no event within 10 s
			t.Fatalf("got %s, want the frame with %s", ev.Data, want)
		}
	}
}

// TestWakesServedByFewWriters: a heartbeat wakes every parked stream at
// once; the server's writers, a bounded number per CPU, serve them in
// turn, rather than a goroutine (and its stack) each, and every stream
// gets it.
func TestWakesServedByFewWriters(t *testing.T) {
	h := hub.New(hub.Config{})
	srv, err := stream.NewServer(h, nil, stream.Config{HeartbeatInterval: time.Hour, ConnTimeout: 2 * time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	serving, most := 0, 0
	stream.OnTookFrames(srv, func(n int) {
		if n == 0 {
			return // a stream's first run, as it parks
		}
		mu.Lock()
		serving++
		most = max(most, serving)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // long enough for every goroutine woken to be here at once
		mu.Lock()
		serving--
		mu.Unlock()
	})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(r.Context(), w, notify.Identity{UserID: "hal"}, stream.Resume{})
	}))
	defer hs.Close()
	limit := stream.WritersPerCPU * runtime.GOMAXPROCS(0)
	n := limit + 64
	streams := make([]*wire.Stream, n)
	for i := range streams {
		streams[i], _ = open(t, hs.URL)
		defer streams[i].Close()
		next(t, streams[i])
	}
	testkit.Eventually(t, 10*time.Second, "every stream is parked", func() bool { return stream.Parked(srv) == n })
	h.Broadcast(hub.Frame{Data: wire.HeartbeatEvent(time.Now())})
	for _, s := range streams {
		if ev := next(t, s); !strings.Contains(string(ev.Data), `"type":"heartbeat"`) {
			t.Fatalf("event %q, want a heartbeat", ev.Data)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most > limit {
		t.Fatalf("%d streams were served at once for one heartbeat to %d, want at most %d (the writers)", most, n, limit)
	}
	t.Logf("at most %d of %d streams served at once", most, n)
}

// TestParkedStreamToAClientNotReading: events larger than the client's
// socket takes, published while the client reads nothing, fill the
// socket on a writer's attempt; the stream's own goroutine writes the
// rest before what was queued meanwhile, and once the client reads, every
// event arrives whole, once and in order.
func TestParkedStreamToAClientNotReading(t *testing.T) {
	h := hub.New(hub.Config{})
	srv, err := stream.NewServer(h, nil, stream.Config{HeartbeatInterval: time.Hour, ConnTimeout: 2 * time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	const events = 96
	body := strings.Repeat("x", 256<<10) // 96 × 256 KiB: many times what a loopback socket buffers
	publish := func(seq int64) {
		n := notify.Notification{ID: "n", Seq: seq, Message: body, Severity: notify.SeverityLow, CreatedAt: time.Now()}
		h.Publish(&hub.Event{Frame: hub.Frame{Seq: seq, Data: wire.NotificationEvent(n)}, Target: notify.Target{UserID: "ivy"}})
	}
	// The first batch taken waits for the others to be queued, so the
	// next one is too large for the socket; while it is taken, one more
	// event is queued, for the stream's own goroutine to write after the
	// rest of that batch.
	published := make(chan struct{})
	calls := 0
	stream.OnTookFrames(srv, func(n int) {
		if n == 0 {
			return
		}
		calls++
		switch calls {
		case 1:
			<-published
		case 2:
			publish(events + 1)
		}
	})
	// Chunked, as the API serves HTTP/1.1: the rest of a chunk must go out
	// before the next chunk's header.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(stream.WithChunking(r.Context(), true), w, notify.Identity{UserID: "ivy"}, stream.Resume{})
	}))
	defer hs.Close()
	s, resp := open(t, hs.URL)
	defer s.Close()
	if !slices.Equal(resp.TransferEncoding, []string{"chunked"}) {
		t.Fatalf("transfer encoding %q, want chunked", resp.TransferEncoding)
	}
	next(t, s) // connected
	testkit.Eventually(t, 10*time.Second, "the stream is parked", func() bool { return stream.Parked(srv) == 1 })
	for seq := int64(1); seq <= events; seq++ {
		publish(seq)
	}
	close(published)
	for seq := 1; seq <= events+1; seq++ {
		ev := next(t, s)
		if ev.ID != strconv.Itoa(seq) {
			t.Fatalf("event %q where seq %d was due", ev.ID, seq)
		}
		if !strings.Contains(string(ev.Data), body) {
			t.Fatalf("event %d arrived without its whole message (%d bytes of data)", seq, len(ev.Data))
		}
	}
}
