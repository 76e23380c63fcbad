package cluster_test

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// TestStreamEndTellsACrashFromAShutdown: a stream's body is chunked, so a
// client's HTTP library sees the server's end of a stream (a shutdown: the
// closing status, then the last chunk) as a clean end of body, and a crash
// (SIGKILL: the connection just goes) as an unexpected EOF. Libraries that
// take a clean end as "done" then still reconnect after a crash.
func TestStreamEndTellsACrashFromAShutdown(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	f := setup(t, 2, nil)
	tok := f.env.Token("alice")
	open := func(node *cluster.Node) (*bufio.Reader, *http.Response) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, node.URL()+cluster.StreamPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
			// The body says why (a 401's reason: CI saw one once, 2026-12-07).
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			t.Fatalf("stream answered %s over %s: %s", resp.Status, resp.Proto, body)
		}
		if got := resp.TransferEncoding; len(got) != 1 || got[0] != "chunked" {
			t.Fatalf("stream transfer encoding %v, want chunked", got)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading up to the connected message: %v", err)
			}
			if strings.Contains(line, `"type":"connected"`) {
				return br, resp
			}
		}
	}
	// rest reads the body to its end and returns what ended it.
	rest := func(br *bufio.Reader) (string, error) {
		done := make(chan struct{})
		var b []byte
		var err error
		go func() { defer close(done); b, err = io.ReadAll(br) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the stream did not end")
		}
		return string(b), err
	}

	stopped, _ := open(f.nodes[0])
	killed, _ := open(f.nodes[1])

	if err := f.nodes[0].Stop(15 * time.Second); err != nil {
		t.Fatalf("stop node0: %v", err)
	}
	body, err := rest(stopped)
	if err != nil {
		t.Errorf("a stream ended by a shutdown: %v, want a clean end of body", err)
	}
	if !strings.Contains(body, `"closing":"shutdown"`) {
		t.Errorf("a stream ended by a shutdown ends with %q, want the closing status", body)
	}

	if err := f.nodes[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := rest(killed); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a stream whose server was killed ended with %v, want an unexpected EOF", err)
	}
}
