package hub_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
)

func frame(seq int64) hub.Frame {
	return hub.Frame{Seq: seq, Data: []byte(fmt.Sprintf("id: %d\n\n", seq))}
}

func event(seq int64, user string, roles ...string) *hub.Event {
	return &hub.Event{Frame: frame(seq), Target: notify.Target{UserID: user, Roles: roles}}
}

func seqs(s *hub.Subscriber) []int64 {
	var out []int64
	for _, f := range s.Take(nil) {
		out = append(out, f.Seq)
	}
	return out
}

func TestPublishMatchesTargets(t *testing.T) {
	h := hub.New(hub.Config{})
	alice := mustSubscribe(t, h, notify.Identity{UserID: "alice", Roles: []string{"USER"}})
	bob := mustSubscribe(t, h, notify.Identity{UserID: "bob", Roles: []string{"ADMIN", "USER"}})
	anon := mustSubscribe(t, h, notify.Identity{UserID: "carol"})

	h.Publish(event(1, "alice"))                // alice only
	h.Publish(event(2, "", "ADMIN"))            // bob
	h.Publish(event(3, "bob", "ADMIN", "USER")) // bob once (user and two roles), alice by role
	h.Publish(event(4, ""))                     // everyone
	h.Publish(event(5, "nobody", "NONE"))       // no one

	for _, tc := range []struct {
		name string
		sub  *hub.Subscriber
		want string
	}{
		{"alice", alice, "[1 3 4]"},
		{"bob", bob, "[2 3 4]"},
		{"carol", anon, "[4]"},
	} {
		if got := fmt.Sprint(seqs(tc.sub)); got != tc.want {
			t.Errorf("%s got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSlowSubscriberIsClosedAtItsBound(t *testing.T) {
	h := hub.New(hub.Config{MaxPending: 8})
	slow := mustSubscribe(t, h, notify.Identity{UserID: "slow"})
	fast := mustSubscribe(t, h, notify.Identity{UserID: "fast"})
	for i := int64(1); i <= 20; i++ {
		h.Publish(event(i, ""))
		fast.Take(nil) // the fast one keeps up
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber still open after overflowing its queue")
	}
	if slow.Reason() != hub.ReasonSlow {
		t.Errorf("reason %q, want slow", slow.Reason())
	}
	if got := len(slow.Take(nil)); got != 0 {
		t.Errorf("closed subscriber still holds %d frames", got)
	}
	if fast.Reason() != "" {
		t.Errorf("fast subscriber closed: %s", fast.Reason())
	}
	if h.Dropped() != 1 {
		t.Errorf("dropped %d, want 1", h.Dropped())
	}
}

func TestCloseStaleSweepsOnlyStreamsWithoutWrites(t *testing.T) {
	h := hub.New(hub.Config{})
	idle := mustSubscribe(t, h, notify.Identity{UserID: "idle"})
	active := mustSubscribe(t, h, notify.Identity{UserID: "active"})
	cutoff := time.Now().Add(time.Millisecond)
	active.Wrote(cutoff.Add(time.Second), 1)
	if n := h.CloseStale(cutoff.Add(time.Millisecond)); n != 1 {
		t.Fatalf("closed %d, want 1", n)
	}
	if idle.Reason() != hub.ReasonTimeout || active.Reason() != "" {
		t.Errorf("idle %q active %q", idle.Reason(), active.Reason())
	}
}

func TestUnsubscribeRemovesFromEveryIndex(t *testing.T) {
	h := hub.New(hub.Config{})
	s := mustSubscribe(t, h, notify.Identity{UserID: "u", Roles: []string{"A", "B"}})
	h.Unsubscribe(s)
	if h.Len() != 0 {
		t.Fatalf("len %d after unsubscribe", h.Len())
	}
	if n := h.Publish(event(1, "u", "A", "B")); n != 0 {
		t.Errorf("unsubscribed stream offered %d events", n)
	}
}

func TestHeartbeatBroadcastReachesEveryone(t *testing.T) {
	h := hub.New(hub.Config{})
	a := mustSubscribe(t, h, notify.Identity{UserID: "a"})
	b := mustSubscribe(t, h, notify.Identity{UserID: "b", Roles: []string{"X"}})
	h.Broadcast(hub.Frame{Data: []byte("hb")})
	for _, s := range []*hub.Subscriber{a, b} {
		if got := s.Take(nil); len(got) != 1 || string(got[0].Data) != "hb" {
			t.Errorf("got %v", got)
		}
	}
}

func mustSubscribe(t *testing.T, h *hub.Hub, id notify.Identity) *hub.Subscriber {
	t.Helper()
	s, err := h.Subscribe(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSubscribersJoiningWhilePublishing: streams subscribe while events
// are published (the hub admits joiners in batches, hub.go): each gets
// every event whose Publish began after its Subscribe returned, and the
// caps count joiners and unsubscribed streams right.
func TestSubscribersJoiningWhilePublishing(t *testing.T) {
	h := hub.New(hub.Config{MaxPending: 10_000, MaxPerUser: 1})
	const events, streams = 3000, 200
	var starting atomic.Int64 // the seq whose Publish is about to begin
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := int64(1); seq <= events; seq++ {
			starting.Store(seq)
			h.Publish(event(seq, "", "R"))
		}
	}()
	type joined struct {
		s     *hub.Subscriber
		after int64 // every event above this must reach s
	}
	got := make([]joined, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			s := mustSubscribe(t, h, notify.Identity{UserID: fmt.Sprint("u", i), Roles: []string{"R"}})
			got[i] = joined{s, starting.Load()}
		})
	}
	wg.Wait()
	<-done
	for i, j := range got {
		all := seqs(j.s)
		var want []int64
		for seq := j.after + 1; seq <= events; seq++ {
			want = append(want, seq)
		}
		if len(all) < len(want) || !slices.Equal(all[len(all)-len(want):], want) {
			t.Fatalf("stream %d joined before event %d began: got %d events ending %v", i, j.after+1, len(all), all[max(0, len(all)-3):])
		}
	}
	if n := h.Len(); n != streams {
		t.Errorf("Len %d, want %d", n, streams)
	}
	// Each user holds its one allowed stream; once it is unsubscribed
	// (twice: the second must not count), the user may open one again.
	if _, err := h.Subscribe(notify.Identity{UserID: "u0"}); err != hub.ErrUserLimit {
		t.Errorf("second stream of u0: %v, want ErrUserLimit", err)
	}
	h.Unsubscribe(got[0].s)
	h.Unsubscribe(got[0].s)
	mustSubscribe(t, h, notify.Identity{UserID: "u0"})
	if _, err := h.Subscribe(notify.Identity{UserID: "u0"}); err != hub.ErrUserLimit {
		t.Errorf("u0 after unsubscribing twice and subscribing again: %v, want ErrUserLimit", err)
	}
}

func TestSubscribeCaps(t *testing.T) {
	h := hub.New(hub.Config{MaxSubscribers: 3, MaxPerUser: 2})
	mustSubscribe(t, h, notify.Identity{UserID: "a"})
	mustSubscribe(t, h, notify.Identity{UserID: "a"})
	if _, err := h.Subscribe(notify.Identity{UserID: "a"}); err != hub.ErrUserLimit {
		t.Errorf("third stream of a: %v, want ErrUserLimit", err)
	}
	b := mustSubscribe(t, h, notify.Identity{UserID: "b"})
	if _, err := h.Subscribe(notify.Identity{UserID: "c"}); err != hub.ErrFull {
		t.Errorf("fourth stream: %v, want ErrFull", err)
	}
	h.Unsubscribe(b)
	mustSubscribe(t, h, notify.Identity{UserID: "c"})
}

// TestMutesSetAfterQueueingStillApply: a stream subscribes before it loads
// its mutes; notifications queued in between are left out when taken if
// their module turns out to be muted (critical ones are never muted).
func TestMutesSetAfterQueueingStillApply(t *testing.T) {
	h := hub.New(hub.Config{})
	sub, err := h.Subscribe(notify.Identity{UserID: "max"})
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range []*hub.Event{
		{Frame: frame(1), Target: notify.Target{UserID: "max"}, Module: "billing", Severity: notify.SeverityLow},
		{Frame: frame(2), Target: notify.Target{UserID: "max"}, Module: "billing", Severity: notify.SeverityCritical},
		{Frame: frame(3), Target: notify.Target{UserID: "max"}, Module: "orders", Severity: notify.SeverityLow},
	} {
		if n := h.Publish(ev); n != 1 {
			t.Fatalf("event %d reached %d subscribers", i, n)
		}
	}
	sub.SetMuted([]string{"billing"})
	var seqs []int64
	for _, f := range sub.Take(nil) {
		seqs = append(seqs, f.Seq)
	}
	if !slices.Equal(seqs, []int64{2, 3}) {
		t.Fatalf("took %v, want [2 3]: the muted low one left out", seqs)
	}
}
