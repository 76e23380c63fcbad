package httpapi_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
)

// resumeStream opens user's stream resuming from n, through the header or
// the query, and checks the connected message echoes n.
func (s *server) resumeStream(t testing.TB, token, how string, n int64) *rawStream {
	t.Helper()
	id := strconv.FormatInt(n, 10)
	var rs *rawStream
	switch how {
	case "header":
		rs = s.mustOpen(t, "/api/notifications/ws", token, "Last-Event-ID", id)
	case "query":
		rs = s.mustOpen(t, "/api/notifications/ws?lastEventId="+id, token)
	default:
		t.Fatalf("resume how %q", how)
	}
	rs.name = fmt.Sprintf("stream resuming from %d by %s: ", n, how)
	ev := rs.connected(t)
	if got := dataMap(t, ev.msg)["resumeFrom"]; got != float64(n) {
		t.Fatalf("connected data.resumeFrom = %v, want %d", got, n)
	}
	return rs
}

// expectSeqs checks that the stream's next notifications are exactly want,
// in order, with no other message (but heartbeats) among them.
func (rs *rawStream) expectSeqs(t testing.TB, want []int64) {
	t.Helper()
	for i, seq := range want {
		ev := rs.skipHeartbeats(t, 10*time.Second)
		if ev.msg.Type != "notification" || ev.id != strconv.FormatInt(seq, 10) {
			t.Fatalf("%sreplayed event %d is %q, want notification %d (all: %v)", rs.name, i, ev.raw, seq, want)
		}
		if got := dataMap(t, ev.msg)["seq"]; got != float64(seq) {
			t.Fatalf("event id %d but data.seq %v", seq, got)
		}
	}
}

func TestResumeReplaysExactlyWhatWasMissed(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	s := setup(t)
	// user-1 holds USER; user-2 holds USER too.
	notes := []struct {
		body    map[string]any
		forUser bool // user-1 may see it
	}{
		{map[string]any{"targetUserId": "user-1"}, true},
		{map[string]any{"targetUserId": "user-2"}, false},
		{map[string]any{"targetRoles": []string{"USER"}}, true},
		{map[string]any{"targetRoles": []string{"ADMIN"}}, false},
		{map[string]any{}, true},
		{map[string]any{"targetUserId": "user-2", "targetRoles": []string{"USER"}}, true},
		{map[string]any{"targetUserId": "user-1", "targetRoles": []string{"OTHER"}}, true},
		{map[string]any{"targetRoles": []string{"OTHER", "ADMIN"}}, false},
		{map[string]any{"targetUserId": "user-10"}, false},
		{map[string]any{"targetUserId": "user-1"}, true},
	}
	ids := make([]string, len(notes))
	for i, n := range notes {
		n.body["message"] = fmt.Sprintf("note %d", i)
		ids[i] = s.publish(t, n.body)
	}
	// The fence, for everyone, is the last notification: a replay that
	// ends with it and holds exactly the expected ones before it holds
	// exactly the expected ones.
	fence := s.fence(t)
	seqs := s.waitPublished(t, append(ids, fence)...)
	var mine []int64
	for i, seq := range seqs {
		if i == len(notes) || notes[i].forUser {
			mine = append(mine, seq)
		}
	}
	slices.Sort(mine)
	if mine[len(mine)-1] != seqs[len(notes)] {
		t.Fatalf("the fence %d is not the last notification (%v)", seqs[len(notes)], seqs)
	}
	after := func(n int64) []int64 {
		var out []int64
		for _, seq := range mine {
			if seq > n {
				out = append(out, seq)
			}
		}
		return out
	}

	// Every resume point (from the start, each seq, mine or not), through
	// the header and the query.
	for _, n := range append([]int64{0}, seqs...) {
		for _, how := range []string{"header", "query"} {
			rs := s.resumeStream(t, s.user, how, n)
			rs.expectSeqs(t, after(n))
			rs.close()
		}
	}
	// The header wins over the query.
	rs := s.mustOpen(t, "/api/notifications/ws?lastEventId=0", s.user, "Last-Event-ID", strconv.FormatInt(mine[2], 10))
	rs.name = "stream with both header and query: "
	rs.connected(t)
	rs.expectSeqs(t, after(mine[2]))
	rs.close()

	// No resume point, no replay: the next notification is a live one.
	rs = s.mustOpen(t, "/api/notifications/ws", s.user)
	rs.name = "stream without resume point: "
	rs.connected(t)
	rs.expectNext(t, s.fence(t))
}

func TestResumeAheadOfHead(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	s := setup(t)
	// A live stream sees b once the node's feed has read it: the ahead
	// status names the feed's position, which is then the head.
	watch := s.mustOpen(t, "/api/notifications/ws", s.user)
	watch.connected(t)
	ids := []string{
		s.publish(t, map[string]any{"message": "a", "targetUserId": "user-1"}),
		s.publish(t, map[string]any{"message": "b", "targetUserId": "user-1"}),
	}
	head := slices.Max(s.waitPublished(t, ids...))
	watch.expectNext(t, ids[0])
	watch.expectNext(t, ids[1])
	watch.close()
	var streams []*rawStream
	for _, how := range []string{"header", "query"} {
		rs := s.resumeStream(t, s.user, how, head+100)
		ev := rs.skipHeartbeats(t, 10*time.Second)
		d := dataMap(t, ev.msg)
		if ev.msg.Type != "status" || ev.hasID || d["replay"] != "ahead" || d["lastSeq"] != float64(head) ||
			d["resumeFrom"] != float64(head+100) {
			t.Fatalf("%sfirst event after connected %q, want status replay ahead with lastSeq %d", rs.name, ev.raw, head)
		}
		streams = append(streams, rs)
	}
	// The stream goes on from the present: new notifications arrive even
	// though their seqs are below the resume point.
	id := s.publish(t, map[string]any{"message": "c", "targetUserId": "user-1"})
	for _, rs := range streams {
		ev := rs.expectNext(t, id)
		if seq, _ := strconv.ParseInt(ev.id, 10, 64); seq != head+1 {
			t.Errorf("%slive seq %s, want %d", rs.name, ev.id, head+1)
		}
	}
}

func TestResumeTruncated(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	s := setup(t)
	var ids []string
	for i := range 4 {
		ids = append(ids, s.publish(t, map[string]any{"message": fmt.Sprintf("n%d", i), "targetUserId": "user-1"}))
	}
	seqs := s.waitPublished(t, ids...)
	slices.Sort(seqs)
	// Retention dropped everything up to the second notification.
	cut := seqs[1]
	s.exec(t, `DELETE FROM notify.notifications WHERE seq <= $1`, cut)
	s.exec(t, `UPDATE notify.stream_head SET truncated_before = $1`, cut)

	for _, tc := range []struct {
		from      int64
		truncated bool
	}{
		{0, true},
		{seqs[0], true},
		{cut, false}, // nothing the client has not seen is gone
		{seqs[2], false},
	} {
		for _, how := range []string{"header", "query"} {
			t.Run(fmt.Sprintf("%s %d", how, tc.from), func(t *testing.T) {
				rs := s.resumeStream(t, s.user, how, tc.from)
				if tc.truncated {
					ev := rs.skipHeartbeats(t, 10*time.Second)
					d := dataMap(t, ev.msg)
					if ev.msg.Type != "status" || ev.hasID || d["replay"] != "truncated" ||
						d["resumeFrom"] != float64(tc.from) || d["oldestAvailable"] != float64(cut+1) {
						t.Fatalf("first event after connected %q, want status replay truncated, oldestAvailable %d", ev.raw, cut+1)
					}
				}
				var want []int64
				for _, seq := range seqs {
					if seq > max(tc.from, cut) {
						want = append(want, seq)
					}
				}
				rs.expectSeqs(t, want)
				fence := s.fence(t)
				rs.expectNext(t, fence)
				seqs = append(seqs, s.waitPublished(t, fence)[0])
			})
		}
	}
}

// TestResumeInLostHistory: after a restore or a failover notifyd numbers on
// a new history, past a hole of seqs this database never had; a client
// resuming from inside the hole may have seen notifications that are gone.
// It is told (status replay "lost", naming the last seq kept), then gets
// everything after, as a client resuming from the last kept seq does.
func TestResumeInLostHistory(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ids := []string{
		s.publish(t, map[string]any{"message": "a", "targetUserId": "user-1"}),
		s.publish(t, map[string]any{"message": "b", "targetUserId": "user-1"}),
	}
	head := slices.Max(s.waitPublished(t, ids...))
	s.exec(t, `SELECT notify.enter_history('a test forces a new history')`)
	id := s.publish(t, map[string]any{"message": "c", "targetUserId": "user-1"})
	next := s.waitPublished(t, id)[0]
	if next <= head+1 {
		t.Fatalf("first seq of the new history %d, want a jump past %d", next, head)
	}
	for _, how := range []string{"header", "query"} {
		rs := s.resumeStream(t, s.user, how, head+2)
		ev := rs.skipHeartbeats(t, 10*time.Second)
		d := dataMap(t, ev.msg)
		if ev.msg.Type != "status" || ev.hasID || d["replay"] != "lost" || d["lastSeq"] != float64(head) || d["resumeFrom"] != float64(head+2) {
			t.Fatalf("%sfirst event after connected %q, want status replay lost with lastSeq %d", rs.name, ev.raw, head)
		}
		rs.expectSeqs(t, []int64{next})
		rs.close()
	}
	// From the last seq kept: no status, the new history's notification.
	rs := s.resumeStream(t, s.user, "header", head)
	rs.expectSeqs(t, []int64{next})
	rs.close()
}
