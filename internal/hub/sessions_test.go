package hub_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
)

// TestCloseEndedSessions: after a reconnect the hub asks once about the
// distinct sessions of its streams and closes those of the sessions that
// ended, and only those; bearer streams have no session and stay.
func TestCloseEndedSessions(t *testing.T) {
	h := hub.New(hub.Config{})
	a1 := mustSubscribe(t, h, notify.Identity{UserID: "u", SessionID: "s-a"})
	a2 := mustSubscribe(t, h, notify.Identity{UserID: "u", SessionID: "s-a"})
	b := mustSubscribe(t, h, notify.Identity{UserID: "u", SessionID: "s-b"})
	bearer := mustSubscribe(t, h, notify.Identity{UserID: "u"})

	var asked [][]string
	live := func(_ context.Context, ids []string) ([]string, error) {
		asked = append(asked, slices.Sorted(slices.Values(ids)))
		return []string{"s-b"}, nil
	}
	n, err := h.CloseEndedSessions(context.Background(), live)
	if err != nil || n != 2 {
		t.Fatalf("closed %d, %v; want the 2 streams of s-a", n, err)
	}
	if len(asked) != 1 || !slices.Equal(asked[0], []string{"s-a", "s-b"}) {
		t.Errorf("asked %v, want [[s-a s-b]] in one call", asked)
	}
	if a1.Reason() != hub.ReasonLogout || a2.Reason() != hub.ReasonLogout {
		t.Errorf("s-a streams: %q %q, want logout", a1.Reason(), a2.Reason())
	}
	if b.Reason() != "" || bearer.Reason() != "" {
		t.Errorf("s-b %q, bearer %q: want both open", b.Reason(), bearer.Reason())
	}

	// A failed check closes nothing; an announcement with a blank id never
	// reaches bearer streams.
	if _, err := h.CloseEndedSessions(context.Background(), func(context.Context, []string) ([]string, error) {
		return nil, errors.New("database down")
	}); err == nil || b.Reason() != "" {
		t.Fatalf("failed check: err %v, s-b %q", err, b.Reason())
	}
	if n := h.CloseSessions([]string{"", "s-x"}, hub.ReasonLogout); n != 0 || bearer.Reason() != "" {
		t.Fatalf("closed %d; bearer %q", n, bearer.Reason())
	}
}
