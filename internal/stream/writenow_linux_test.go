package stream

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
)

// nowWriter is a parked stream's writer on server: flushes with noWait
// make one attempt that does not wait (writer.now).
func nowWriter(t *testing.T, server net.Conn) *writer {
	t.Helper()
	raw, err := server.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	p := &parkedStream{raw: raw}
	p.now.attempt = p.now.write
	return &writer{conn: server, chunked: true, timeout: 10 * time.Second, now: p.writeNow, noWait: true}
}

// TestFlushWithoutWaitingAllocatesNothing: the writers' flush of one
// frame to a socket with room writes the whole chunk and, like the flush
// under a deadline, leaves no garbage for a heartbeat to thousands of
// streams.
func TestFlushWithoutWaitingAllocatesNothing(t *testing.T) {
	server, client := loopback(t)
	wr := nowWriter(t, server)
	heartbeat := []byte("data: {\"type\":\"heartbeat\"}\n\n")
	want := strconv.FormatInt(int64(len(heartbeat)), 16) + "\r\n" + string(heartbeat) + "\r\n"
	got := make([]byte, len(want))
	allocs := testing.AllocsPerRun(200, func() {
		wr.add(heartbeat)
		if err := wr.flush(); err != nil {
			t.Fatal(err)
		}
		if wr.unfinished() {
			t.Fatal("a socket with room left part of a heartbeat")
		}
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatal(err)
		}
	})
	if string(got) != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
	if allocs != 0 {
		t.Fatalf("a flush without waiting allocated %.1f times, want 0", allocs)
	}
}

// TestFlushWithoutWaitingLeavesTheRest: a batch larger than the socket
// takes is written as far as it goes, the rest kept (errWouldBlock); the
// next flush, under a deadline, writes exactly that rest, so the client
// reads one whole chunk.
func TestFlushWithoutWaitingLeavesTheRest(t *testing.T) {
	server, client := loopback(t)
	wr := nowWriter(t, server)
	var want bytes.Buffer
	var frames [][]byte
	for i := range 64 { // 4 MiB: more than a loopback socket's buffers
		f := bytes.Repeat([]byte{'a' + byte(i%26)}, 64<<10)
		frames = append(frames, f)
		wr.add(f)
	}
	want.WriteString(strconv.FormatInt(int64(64*64<<10), 16) + "\r\n")
	for _, f := range frames {
		want.Write(f)
	}
	want.WriteString("\r\n")

	if err := wr.flush(); !errors.Is(err, errWouldBlock) {
		t.Fatalf("flush of 4 MiB to a client not reading: %v, want errWouldBlock", err)
	}
	if !wr.unfinished() {
		t.Fatal("the rest of the batch is not kept")
	}
	read := make(chan []byte, 1)
	go func() {
		b := make([]byte, want.Len())
		_, err := io.ReadFull(client, b)
		if err != nil {
			b = nil
		}
		read <- b
	}()
	wr.noWait = false
	if err := wr.flush(); err != nil {
		t.Fatal(err)
	}
	if wr.unfinished() {
		t.Fatal("a flush under a deadline left part of the batch")
	}
	select {
	case got := <-read:
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("the client read %d bytes that differ from the chunk (%d bytes)", len(got), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not get the whole chunk")
	}
}

func TestConsume(t *testing.T) {
	bufs := func(ss ...string) net.Buffers {
		var out net.Buffers
		for _, s := range ss {
			out = append(out, []byte(s))
		}
		return out
	}
	for _, tc := range []struct {
		in   net.Buffers
		n    int
		want []string
	}{
		{bufs("ab", "cd"), 0, []string{"ab", "cd"}},
		{bufs("ab", "cd"), 1, []string{"b", "cd"}},
		{bufs("ab", "cd"), 2, []string{"cd"}},
		{bufs("ab", "", "cd"), 3, []string{"d"}},
		{bufs("ab", "cd"), 4, nil},
		{bufs("", "ab"), 0, []string{"ab"}}, // an empty buffer holds nothing to write
	} {
		var got []string
		for _, b := range consume(slices.Clone(tc.in), tc.n) {
			got = append(got, string(b))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("consume(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestRewokenStreamWaitsItsTurn: a stream woken again while a writer
// serves it goes back to the end of the writers' queue, so streams woken
// without pause, more of them than there are writers, cannot each keep
// one: a quiet stream's event is written long before they stop.
func TestRewokenStreamWaitsItsTurn(t *testing.T) {
	h := hub.New(hub.Config{})
	srv, err := NewServer(h, nil, Config{HeartbeatInterval: time.Hour, ConnTimeout: 2 * time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Once armed, every look at a stream wakes every busy stream again
	// (without a frame, so no socket fills), until rounds looks. Only the
	// quiet stream is ever sent a frame: the look that takes it says when
	// it was served.
	const rounds = 200000
	var busyStreams atomic.Pointer[[]*parkedStream]
	var looks, quietServedAt atomic.Int64
	srv.tookFrames = func(n int) {
		ps := busyStreams.Load()
		if ps == nil {
			return
		}
		look := looks.Add(1)
		if n > 0 {
			quietServedAt.Store(look)
		}
		if look <= rounds {
			for _, p := range *ps {
				p.wake()
			}
		}
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Serve(r.Context(), w, notify.Identity{UserID: r.URL.Query().Get("user")}, Resume{})
	}))
	defer hs.Close()
	dial := func(user string) net.Conn {
		conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, "GET /?user="+user+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	busy := 2 * writersPerCPU * runtime.GOMAXPROCS(0) // twice the writers
	for range busy {
		conn := dial("busy")
		go func() { _, _ = io.Copy(io.Discard, conn) }()
	}
	quietConn := dial("quiet")
	// Every stream parked and idle (the quiet one too, so its event has a
	// subscriber), the busy ones set apart.
	parked := func() (ps []*parkedStream, all int) {
		srv.poller.mu.Lock()
		defer srv.poller.mu.Unlock()
		for _, p := range srv.poller.streams {
			if p.state.Load() != parkedIdle {
				continue
			}
			all++
			if p.sub.Identity().UserID == "busy" {
				ps = append(ps, p)
			}
		}
		return ps, all
	}
	deadline := time.Now().Add(10 * time.Second)
	ps, all := parked()
	for ; all < busy+1; ps, all = parked() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d streams parked", all, busy+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	busyStreams.Store(&ps)
	for _, p := range ps {
		p.wake()
	}
	h.Publish(&hub.Event{Frame: hub.Frame{Seq: 1, Data: []byte("data: quiet\n\n")}, Target: notify.Target{UserID: "quiet"}})
	_ = quietConn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("data: quiet")) {
		n, err := quietConn.Read(buf)
		if err != nil {
			t.Fatalf("the quiet stream's event did not arrive: %v (read %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	served := quietServedAt.Load()
	t.Logf("the quiet stream was served at the %d-th look at a stream", served)
	if served > rounds {
		t.Fatalf("the quiet stream was served only after the busy streams' %d looks: they kept the writers", rounds)
	}
}
