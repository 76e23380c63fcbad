package wire_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/wire"
)

// TestLongLines: data lines longer than the read buffer arrive whole.
func TestLongLines(t *testing.T) {
	big := strings.Repeat("x", 30000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			w.Write([]byte("id: 1\ndata: {\"a\":\"" + big + "\"}\n\n"))
		}
	}))
	defer srv.Close()
	s, err := wire.Open(context.Background(), http.DefaultClient, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		ev, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		t.Log(ev.ID, len(ev.Data))
		if len(ev.Data) != 30008 {
			t.Fatal(len(ev.Data))
		}
	}
}

// TestFailureKind: the failed attempts a storm counts are named by what
// failed, through the layers of wrapping net/http adds.
func TestFailureKind(t *testing.T) {
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close() // nothing listens there any more
	_, refusedErr := wire.Open(context.Background(), http.DefaultClient, refusedURL, nil)

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"draining"}`, http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	_, statusErr := wire.Open(context.Background(), http.DefaultClient, unavailable.URL, nil)

	for _, c := range []struct {
		err  error
		want string
	}{
		{refusedErr, "connection refused"},
		{statusErr, "status 503"},
		{fmt.Errorf("reading the connected message: %w", io.ErrUnexpectedEOF), "closed early"},
		{fmt.Errorf("opening: %w", errors.New("node out of rotation")), "node out of rotation"},
	} {
		if got := wire.FailureKind(c.err); got != c.want {
			t.Errorf("FailureKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
