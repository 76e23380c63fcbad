package wire_test

import (
	"context"
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
