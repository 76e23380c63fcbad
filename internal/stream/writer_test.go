package stream

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// loopback is a TCP connection's two ends.
func loopback(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestDetachedFlushWritesOneChunkAndAllocatesNothing: a detached writer
// sends each batch as one HTTP/1.1 chunk (size in hex, the frames, CRLF),
// and a flush allocates nothing, so the heartbeats of thousands of idle
// streams leave no garbage of the writer's for the collector.
func TestDetachedFlushWritesOneChunkAndAllocatesNothing(t *testing.T) {
	server, client := loopback(t)
	wr := &writer{conn: server, chunked: true, timeout: 10 * time.Second}
	heartbeat := []byte("data: {\"type\":\"heartbeat\"}\n\n")
	event := []byte("id: 7\ndata: {}\n\n")

	wr.add(heartbeat)
	wr.add(event)
	if err := wr.flush(); err != nil {
		t.Fatal(err)
	}
	want := strconv.FormatInt(int64(len(heartbeat)+len(event)), 16) + "\r\n" + string(heartbeat) + string(event) + "\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}

	wantOne := strconv.FormatInt(int64(len(heartbeat)), 16) + "\r\n" + string(heartbeat) + "\r\n"
	one := make([]byte, len(wantOne))
	allocs := testing.AllocsPerRun(200, func() {
		wr.add(heartbeat)
		if err := wr.flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, one); err != nil {
			t.Fatal(err)
		}
	})
	if string(one) != wantOne {
		t.Fatalf("a heartbeat's chunk: %q", one)
	}
	if allocs != 0 {
		t.Fatalf("a flush of one frame allocated %.1f times, want 0", allocs)
	}
}
