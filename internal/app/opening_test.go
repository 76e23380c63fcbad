package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// slowReader is a raw TCP stream client with a small receive buffer that
// reads a little every 50 ms (a phone on a bad network), until told to
// read at full speed.
type slowReader struct {
	conn net.Conn
	mu   sync.Mutex
	got  []byte
	fast chan struct{}
	done chan struct{}
	err  error
}

func openSlow(t *testing.T, addr, token, lastEventID string) *slowReader {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { // before connecting, so the window is small from the start
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /api/notifications/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nLast-Event-ID: %s\r\n\r\n", token, lastEventID)
	r := &slowReader{conn: conn, fast: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *slowReader) run() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n := 1024
		select {
		case <-r.fast:
			n = len(buf)
		default:
			<-tick.C
		}
		_ = r.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		k, err := r.conn.Read(buf[:n])
		r.mu.Lock()
		r.got = append(r.got, buf[:k]...)
		r.mu.Unlock()
		if err != nil {
			r.err = err
			return
		}
	}
}

func (r *slowReader) contains(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Contains(r.got, []byte(s))
}

// drain reads the rest at full speed until the server ends the stream and
// returns the ids of the notification events received whole (an event cut
// short by the end of the stream is dropped, as EventSource drops it).
func (r *slowReader) drain(t *testing.T, within time.Duration) []int64 {
	t.Helper()
	close(r.fast)
	select {
	case <-r.done:
	case <-time.After(within):
		t.Fatalf("the slow stream did not end within %s", within)
	}
	if !errors.Is(r.err, io.EOF) {
		t.Fatalf("the slow stream ended with %v, want the server closing it", r.err)
	}
	resp := bufio.NewReader(bytes.NewReader(r.got))
	for { // status line and headers
		line, err := resp.ReadString('\n')
		if err != nil {
			t.Fatalf("no end of headers in %q", r.got)
		}
		if line == "\r\n" {
			break
		}
	}
	body, _ := io.ReadAll(resp)
	events := strings.Split(string(body), "\n\n")
	var ids []int64
	for _, ev := range events[:len(events)-1] { // the last piece has no blank line after it
		for line := range strings.SplitSeq(ev, "\n") {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("event id %q", v)
				}
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// TestSlowReplayDoesNotHoldOpeningSlot: with one opening slot, a client
// resuming far behind that reads its replay slowly (but steadily enough
// that no single write times out) does not keep other users' streams from
// opening; its opening is cut at Stream.OpeningTimeout, and resuming from
// the last event it received delivers the rest, then live notifications,
// exactly once and in order.
func TestSlowReplayDoesNotHoldOpeningSlot(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.Stream.MaxOpening = 1
	cfg.Stream.OpeningTimeout = 3 * time.Second
	srv := env.Start(cfg)
	ctx := context.Background()

	// About 9 MB of replay: more than the kernel buffers of both ends hold.
	const backlog = 3000
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (target_user_id, message, data)
		SELECT 'slow', 'r' || g, jsonb_build_object('pad', repeat('x', 3000)) FROM generate_series(1, $1::int) g`, backlog); err != nil {
		t.Fatal(err)
	}
	seqs := func(after int64) []int64 {
		t.Helper()
		rows, err := env.DB.Pool.Query(ctx, `SELECT seq FROM notify.notifications
			WHERE target_user_id = 'slow' AND seq > $1 ORDER BY seq`, after)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []int64
		for rows.Next() {
			var s int64
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	testkit.Eventually(t, 30*time.Second, "the backlog is published", func() bool { return len(seqs(0)) == backlog })
	// And fanned out: a later notification has reached a stream (the feed
	// goes in seq order), so the backlog cannot reach the slow stream live.
	probe := apptest.Open(t, srv.URL(), env.Token("probe"), "")
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (target_user_id, message) VALUES ('probe', 'p')`); err != nil {
		t.Fatal(err)
	}
	probe.Notifications(1, 30*time.Second)
	probe.Close()
	testkit.Eventually(t, 10*time.Second, "the probe stream is closed", func() bool { return srv.OpenStreams() == 0 })

	slow := openSlow(t, srv.Addr(), env.Token("slow"), "0")
	testkit.Eventually(t, 10*time.Second, "the slow stream is connected", func() bool { return slow.contains(`"type":"connected"`) })

	// The slow stream is replaying now; another user's stream opens anyway.
	started := time.Now()
	other := apptest.Open(t, srv.URL(), env.Token("other"), "")
	if _, ok := other.NextOfType("connected", cfg.Stream.OpeningTimeout+3*time.Second); !ok {
		t.Fatalf("another user's stream was not connected within %s of the slow replay (err %v)",
			cfg.Stream.OpeningTimeout+3*time.Second, other.Err())
	}
	t.Logf("other stream connected after %s", time.Since(started).Round(time.Millisecond))

	// The slow stream is closed once its opening deadline passes.
	testkit.Eventually(t, cfg.Stream.OpeningTimeout+5*time.Second, "the slow stream is closed",
		func() bool { return srv.OpenStreams() == 1 })
	got := slow.drain(t, 30*time.Second)
	want := seqs(0)
	if len(got) == 0 || len(got) >= backlog {
		t.Fatalf("the slow client received %d of %d before it was closed; want some but not all", len(got), backlog)
	}
	for i, id := range got {
		if id != want[i] {
			t.Fatalf("slow client: event %d has id %d, want %d", i, id, want[i])
		}
	}
	last := got[len(got)-1]
	t.Logf("the slow client received %d of %d", len(got), backlog)

	// Live ones too, then resume: the rest exactly once, in order.
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (target_user_id, message)
		SELECT 'slow', 'live' || g FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the live ones are published", func() bool { return len(seqs(0)) == backlog+5 })
	// The client resumes as a real one does: from the last id it got,
	// again if this stream too is closed before the end (on a loaded
	// machine, with the race detector, a replay of this size can outlast
	// the 3 s opening timeout; it moves forward with every reconnect).
	rest := seqs(last)
	var resumed []int64
	from := last
	var r *apptest.Reader
	deadline := time.Now().Add(60 * time.Second)
	for len(resumed) < len(rest) && time.Now().Before(deadline) {
		if r != nil {
			r.Close()
		}
		r = apptest.Open(t, srv.URL(), env.Token("slow"), strconv.FormatInt(from, 10))
		for len(resumed) < len(rest) {
			m, ok := r.NextOfType("notification", 10*time.Second)
			if !ok {
				break
			}
			resumed = append(resumed, apptest.SeqOf(m))
			from = apptest.SeqOf(m)
		}
	}
	if !slices.Equal(resumed, rest) {
		t.Fatalf("resumed: got %d notifications, want exactly the %d after %d, in order", len(resumed), len(rest), last)
	}
	if m, ok := r.NextOfType("notification", 500*time.Millisecond); ok {
		t.Fatalf("resumed: an extra notification %s", m.EventID)
	}
}
