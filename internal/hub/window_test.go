package hub_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
)

// mixed is a notification stream for the identities of TestSinceIsTheLiveRule:
// to one user, to roles, to both, to everyone, from a muted module, and
// critical ones from the muted module.
func mixed(n int) []*hub.Event {
	users := []string{"alice", "bob", "carol", ""}
	roles := [][]string{nil, {"OPS"}, {"FIN", "OPS"}, {"NONE"}}
	modules := []string{"", "orders", "billing"}
	sevs := []notify.Severity{notify.SeverityLow, notify.SeverityCritical, notify.SeverityMedium}
	r := rand.New(rand.NewPCG(1, 2))
	evs := make([]*hub.Event, n)
	for i := range evs {
		ev := event(int64(i+1)*2, users[r.IntN(len(users))], roles[r.IntN(len(roles))]...) // gaps in seq: set-aside rows
		ev.Module = modules[r.IntN(len(modules))]
		ev.Severity = sevs[r.IntN(len(sevs))]
		evs[i] = ev
	}
	return evs
}

var identities = []struct {
	id    notify.Identity
	muted []string
}{
	{notify.Identity{UserID: "alice", Roles: []string{"OPS"}}, []string{"orders"}},
	{notify.Identity{UserID: "bob", Roles: []string{"FIN"}}, nil},
	{notify.Identity{UserID: "carol"}, []string{"orders", "billing"}},
	{notify.Identity{UserID: "dave", Roles: []string{"OPS", "FIN"}}, []string{"billing"}},
}

// TestSinceIsTheLiveRule: a resume from the window gets exactly what a
// stream that was live all along got — same frames, same order — for a mix
// of user, role, both, broadcast, muted and critical notifications.
func TestSinceIsTheLiveRule(t *testing.T) {
	h := hub.New(hub.Config{Window: 1000, MaxPending: 1000})
	h.StartWindow(0)
	live := make([]*hub.Subscriber, len(identities))
	for i, x := range identities {
		live[i] = mustSubscribe(t, h, x.id)
		live[i].SetMuted(x.muted)
	}
	evs := mixed(400)
	for _, ev := range evs {
		h.Publish(ev)
	}
	for i, x := range identities {
		want := live[i].Take(nil)
		late := mustSubscribe(t, h, x.id)
		late.SetMuted(x.muted)
		for _, after := range []int64{0, 1, 2, 401, 800} {
			got, through, ok := h.Since(late, after, nil)
			if !ok || through != 800 {
				t.Fatalf("%s from %d: ok %v through %d, want the window through 800", x.id.UserID, after, ok, through)
			}
			w := slices.DeleteFunc(slices.Clone(want), func(f hub.Frame) bool { return f.Seq <= after })
			if fmt.Sprint(frameSeqs(got)) != fmt.Sprint(frameSeqs(w)) {
				t.Errorf("%s from %d: window %v\nlive %v", x.id.UserID, after, frameSeqs(got), frameSeqs(w))
			}
		}
		if len(want) == 0 || len(want) == len(evs) {
			t.Errorf("%s got %d of %d: the mix does not exercise the rule", x.id.UserID, len(want), len(evs))
		}
	}
}

func frameSeqs(fs []hub.Frame) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.Seq
	}
	return out
}

// TestSinceOnlyInsideTheWindow: the window answers a resume point only when
// it holds everything after it.
func TestSinceOnlyInsideTheWindow(t *testing.T) {
	h := hub.New(hub.Config{Window: 3})
	s := mustSubscribe(t, h, notify.Identity{UserID: "alice"})
	h.Publish(event(1, "alice"))
	if _, _, ok := h.Since(s, 0, nil); ok {
		t.Fatal("answered before the window knew where it starts")
	}
	h.StartWindow(10)
	if _, through, ok := h.Since(s, 10, nil); !ok || through != 10 {
		t.Fatalf("empty window at its start: ok %v through %d", ok, through)
	}
	for seq := int64(11); seq <= 15; seq++ {
		h.Publish(event(seq, "alice"))
	}
	for _, tc := range []struct {
		after int64
		ok    bool
		want  string
	}{
		{9, false, ""}, {11, false, ""}, // 12 fell out: the window starts after it
		{12, true, "[13 14 15]"}, {14, true, "[15]"}, {15, true, "[]"},
		{16, false, ""}, // ahead of the hub
	} {
		got, through, ok := h.Since(s, tc.after, nil)
		if ok != tc.ok || (ok && (through != 15 || fmt.Sprint(frameSeqs(got)) != tc.want)) {
			t.Errorf("after %d: %v %d %v, want ok %v %s", tc.after, frameSeqs(got), through, ok, tc.ok, tc.want)
		}
	}
	if _, _, ok := (hub.New(hub.Config{Window: -1})).Since(s, 0, nil); ok {
		t.Error("a hub without a window answered")
	}
}

// TestSinceHandOffUnderPublishing: streams subscribe and read the window
// while events are being published; the window's answer, then the queued
// frames above its last seq, are every event after the resume point once,
// in order.
func TestSinceHandOffUnderPublishing(t *testing.T) {
	const total = 20000
	h := hub.New(hub.Config{Window: total, MaxPending: total})
	h.StartWindow(0)
	var wg sync.WaitGroup
	errs := make(chan error, total/300)
	// Every 300 events a stream opens (its goroutine races the events
	// that follow) and resumes from 100 before where the stream stood.
	for seq := int64(1); seq <= total; seq++ {
		h.Publish(event(seq, "", "R"))
		if seq%300 == 0 {
			wg.Add(1)
			go func(after int64) {
				defer wg.Done()
				if err := resumeUnderPublishing(h, after, total); err != nil {
					errs <- err
				}
			}(seq - 100)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// resumeUnderPublishing subscribes, reads the window from after, then the
// queue up to seq total, as a stream does, and checks each seq comes once.
func resumeUnderPublishing(h *hub.Hub, after, total int64) error {
	s, err := h.Subscribe(notify.Identity{UserID: fmt.Sprint("u", after), Roles: []string{"R"}})
	if err != nil {
		return err
	}
	got, through, ok := h.Since(s, after, nil)
	if !ok {
		return fmt.Errorf("resume from %d: not in the window", after)
	}
	want := after + 1
	for _, f := range got {
		if f.Seq != want {
			return fmt.Errorf("resume from %d: window gave %d, want %d", after, f.Seq, want)
		}
		want++
	}
	for want <= total {
		<-s.Ready()
		for _, f := range s.Take(nil) {
			if f.Seq <= through {
				continue // what live skips: the window had it
			}
			if f.Seq != want {
				return fmt.Errorf("resume from %d (window through %d): live gave %d, want %d", after, through, f.Seq, want)
			}
			want++
		}
	}
	return nil
}

// TestWindowBoundedByBytes: large frames leave the window before Window
// events are held, so its memory stays within WindowBytes.
func TestWindowBoundedByBytes(t *testing.T) {
	h := hub.New(hub.Config{Window: 100, WindowBytes: 3 * (1000 + 160)})
	h.StartWindow(0)
	s := mustSubscribe(t, h, notify.Identity{UserID: "alice"})
	for seq := int64(1); seq <= 10; seq++ {
		h.Publish(&hub.Event{Frame: hub.Frame{Seq: seq, Data: make([]byte, 1000)}, Target: notify.Target{UserID: "alice"}})
	}
	if _, _, ok := h.Since(s, 6, nil); ok {
		t.Error("the window holds more than 3 events of 1,000 bytes")
	}
	if got, _, ok := h.Since(s, 7, nil); !ok || fmt.Sprint(frameSeqs(got)) != "[8 9 10]" {
		t.Errorf("from 7: %v %v, want [8 9 10]", frameSeqs(got), ok)
	}
}
