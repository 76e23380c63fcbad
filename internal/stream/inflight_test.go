package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestDeferredCountWaitsForOpenings: a stream resumed from the window gets
// its unread count only once no other stream is in the database part of
// its opening (as in a reconnect storm), or after the longest wait when
// the openings never stop.
func TestDeferredCountWaitsForOpenings(t *testing.T) {
	t.Parallel()
	w := setupWorld(t, 1000)
	first := w.send(t, `('alice', NULL, NULL, 'low', 'a1'), ('alice', NULL, NULL, 'low', 'a2')`) - 1
	url, _, srv := w.serveServer(t, w.store, notify.Identity{UserID: "alice"}, true)

	// opened reads a resumed stream up to its replayed events and returns
	// it with a channel of its later status messages.
	opened := func() chan string {
		t.Helper()
		s, err := wire.Open(context.Background(), http.DefaultClient, url, http.Header{"Last-Event-ID": {strconv.FormatInt(first-1, 10)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		for replayed := 0; replayed < 2; {
			ev := next(t, s)
			if ev.ID != "" {
				replayed++
			} else if strings.Contains(string(ev.Data), `"unreadCount"`) {
				t.Fatalf("count before the replay ended: %s", ev.Data)
			}
		}
		statuses := make(chan string, 4)
		go func() {
			for {
				ev, err := s.Next()
				if err != nil {
					return
				}
				if strings.Contains(string(ev.Data), `"type":"status"`) {
					statuses <- string(ev.Data)
				}
			}
		}()
		return statuses
	}
	counted := func(statuses chan string, within time.Duration) bool {
		t.Helper()
		select {
		case st := <-statuses:
			if !strings.Contains(st, `"unreadCount":2`) {
				t.Fatalf("status %s, want the unread count 2", st)
			}
			return true
		case <-time.After(within):
			return false
		}
	}

	t.Run("held back while a stream opens", func(t *testing.T) {
		leave := stream.EnterOpening(srv)
		statuses := opened()
		if counted(statuses, 500*time.Millisecond) {
			leave()
			t.Fatal("the count was sent while another stream was opening")
		}
		leave()
		if !counted(statuses, 10*time.Second) {
			t.Fatal("no count within 10 s of the openings ending")
		}
	})

	t.Run("sent after the longest wait", func(t *testing.T) {
		stream.SetCountWait(srv, 300*time.Millisecond)
		defer stream.SetCountWait(srv, 10*time.Second)
		leave := stream.EnterOpening(srv)
		defer leave()
		statuses := opened()
		if !counted(statuses, 10*time.Second) {
			t.Fatal("no count while the node kept opening, past the longest wait")
		}
	})
}

// TestOpeningsInFlightUntilTheirReadsAreDone: a stream counts as opening
// while it waits for its turn at the database and until its reads are
// done, whether it resumes from the window (its mutes) or opens from the
// table.
func TestOpeningsInFlightUntilTheirReadsAreDone(t *testing.T) {
	t.Parallel()
	w := setupWorld(t, 1000)
	last := w.send(t, `('bob', NULL, NULL, 'low', 'b1')`)
	url, _, srv := w.serveServer(t, w.store, notify.Identity{UserID: "bob"}, true)
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"resumed from the window", http.Header{"Last-Event-ID": {strconv.FormatInt(last-1, 10)}}},
		{"opened from the table", http.Header{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := stream.HoldTurns(srv)
			opening := make(chan *wire.Stream, 1)
			go func() {
				s, err := wire.Open(context.Background(), http.DefaultClient, url, tc.header)
				if err != nil {
					t.Error(err)
					close(opening)
					return
				}
				opening <- s
			}()
			testkit.Eventually(t, 10*time.Second, "the stream counted as opening while it waits for its turn", func() bool {
				return stream.OpeningsInFlight(srv) == 1
			})
			release()
			s := <-opening
			if s == nil {
				t.FailNow()
			}
			defer s.Close()
			for {
				if ev := next(t, s); strings.Contains(string(ev.Data), `"type":"connected"`) {
					break
				}
			}
			testkit.Eventually(t, 10*time.Second, "no opening in flight once its reads are done", func() bool {
				return stream.OpeningsInFlight(srv) == 0
			})
		})
	}
}

// TestSlowReplayIsNotAnOpeningInFlight: a stream replaying from the table
// to a client that does not read has done its reads; it holds no deferred
// count back while its replay waits on the client.
func TestSlowReplayIsNotAnOpeningInFlight(t *testing.T) {
	t.Parallel()
	w := setupWorld(t, 3) // older resumes replay from the table
	rows := strings.Repeat(`('carol', NULL, NULL, 'low', repeat('x', 3000)), `, 1000)
	last := w.send(t, strings.TrimSuffix(rows, ", "))
	url, _, srv := w.serveServer(t, w.store, notify.Identity{UserID: "carol"}, true)

	// A client with a 4 KiB receive buffer that reads nothing past the
	// status line: 3 MB of replay cannot all be written.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	addr := strings.TrimPrefix(url, "http://")
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nLast-Event-ID: %d\r\n\r\n", addr, last-1000)
	if status, err := bufio.NewReaderSize(conn, 16).ReadString('\n'); err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("stream answered %q (%v)", status, err)
	}
	testkit.Eventually(t, 5*time.Second, "no opening in flight while the replay waits for its client", func() bool {
		return stream.OpeningsInFlight(srv) == 0
	})
	if n := w.hub.Len(); n != 1 {
		t.Fatalf("%d streams on the hub, want the slow one still open", n)
	}
}
