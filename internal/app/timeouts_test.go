package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/wire"
)

// TestSlowRequestBodyIsCut: a client that sends a request's headers and then
// trickles its body (slowloris) would hold a connection and a goroutine for
// as long as it likes; it is cut once Config.RequestTimeout has passed,
// whether or not the handler reads the body.
func TestSlowRequestBodyIsCut(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	const bound = time.Second
	cfg.RequestTimeout = bound
	srv := env.Start(cfg)
	token := env.Token("admin", "ADMIN")
	for _, tc := range []struct{ name, head string }{
		{"publish, which reads the body", "POST /api/notifications HTTP/1.1\r\nAuthorization: Bearer " + token + "\r\nContent-Type: application/json\r\n"},
		{"unauthenticated, body never read", "POST /api/notifications HTTP/1.1\r\n"},
		{"unknown path", "POST /no/such/path HTTP/1.1\r\n"},
		{"the stream route with a body", "GET /api/notifications/ws HTTP/1.1\r\nAuthorization: Bearer " + token + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := fmt.Fprintf(conn, "%sHost: x\r\nContent-Length: 1000\r\n\r\n", tc.head); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() { // one byte every 200 ms: the whole body would take 200 s
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for range 1000 {
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			// Read until the server closes the connection (a reset, too: it
			// closes while the client is still sending).
			_ = conn.SetReadDeadline(time.Now().Add(bound + 5*time.Second))
			answer, err := io.ReadAll(conn)
			took := time.Since(start)
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("connection still open after %v (answer so far %q): %v", took.Round(time.Millisecond), answer, err)
			}
			if took > bound+2*time.Second {
				t.Errorf("cut after %v, want about %v", took.Round(time.Millisecond), bound)
			}
			if strings.Contains(string(answer), " 200 OK") || strings.Contains(string(answer), " 201 ") {
				t.Errorf("a trickled body was accepted: %q", answer)
			}
			t.Logf("cut after %v: %q", took.Round(time.Millisecond), firstLine(answer))
		})
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// TestStreamOutlivesRequestTimeout: the request time limit is for ordinary
// requests; an event stream lives on well past it and keeps receiving
// heartbeats, also when its connection served an ordinary request first
// (whose deadlines must not stay behind on the connection).
func TestStreamOutlivesRequestTimeout(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	const bound = time.Second
	cfg.RequestTimeout = bound
	cfg.Stream.HeartbeatInterval = 250 * time.Millisecond
	srv := env.Start(cfg)
	token := env.Token("alice")
	// One connection, reused: a plain request first, then the stream on it.
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := wire.Open(ctx, client, srv.URL()+"/api/notifications/ws", http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opened := time.Now()
	lifetime := 4 * bound
	time.AfterFunc(lifetime+5*time.Second, cancel) // bound the test if the stream hangs
	heartbeats := 0
	var lastBeat time.Time
	for time.Since(opened) < lifetime {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("stream ended after %v (%d heartbeats): %v", time.Since(opened).Round(time.Millisecond), heartbeats, err)
		}
		if strings.Contains(string(ev.Data), `"type":"heartbeat"`) {
			heartbeats++
			lastBeat = time.Now()
		}
	}
	if heartbeats < 8 || time.Since(lastBeat) > time.Second {
		t.Fatalf("%d heartbeats in %v, the last %v ago; want one every 250 ms", heartbeats, lifetime, time.Since(lastBeat).Round(time.Millisecond))
	}
}
