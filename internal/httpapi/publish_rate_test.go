package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/stream"
)

// TestPublishLimitDefaults: at default settings the admin publish limit
// lets a service sustain 1,000 publishes a second indefinitely (a minute of
// them, on a simulated clock), while the per-user limit of the test action
// still refuses most of the same load.
func TestPublishLimitDefaults(t *testing.T) {
	t.Parallel()
	// Only the limiters are used: no request reaches the dependencies.
	a, err := New(Deps{Auth: noAuth{}, Notifications: &postgres.Notifications{}, Queue: &postgres.Queue{}, Streams: &stream.Server{}}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var adminRefused, userRefused int
	for i := range 60_000 { // 1,000 a second for 60 s
		now := start.Add(time.Duration(i) * time.Millisecond)
		if ok, _ := a.adminPublishRate.allow("orders-service", now); !ok {
			adminRefused++
		}
		if ok, _ := a.publishRate.allow("user-1", now); !ok {
			userRefused++
		}
	}
	if adminRefused != 0 {
		t.Errorf("admin limit refused %d of 60,000 publishes at 1,000/s", adminRefused)
	}
	if userRefused < 50_000 {
		t.Errorf("per-user limit refused only %d of 60,000 test actions at 1,000/s", userRefused)
	}
}

// noAuth refuses every token; the limiters under test never ask it.
type noAuth struct{}

func (noAuth) Verify(context.Context, string) (notify.Identity, error) {
	return notify.Identity{}, notify.ErrUnauthenticated
}
