package cluster

import (
	"reflect"
	"testing"

	"github.com/notifyd/notifyd/internal/notify"
)

func testFeed() *Feed {
	f := &Feed{After: 0, bySeq: map[int64]Published{}, byUser: map[string][]int64{}, byRole: map[string][]int64{}}
	for _, p := range []Published{
		{Seq: 1, Target: notify.Target{UserID: "alice"}},
		{Seq: 2, Target: notify.Target{Roles: []string{"OPS"}}},
		{Seq: 3, Target: notify.Target{}},
		{Seq: 4, Target: notify.Target{UserID: "bob"}},
		{Seq: 5, Target: notify.Target{UserID: "bob", Roles: []string{"OPS", "DEV"}}},
		{Seq: 6, Target: notify.Target{UserID: "alice"}},
	} {
		f.add(p)
	}
	return f
}

func TestFeedCheck(t *testing.T) {
	alice := notify.Identity{UserID: "alice", Roles: []string{"OPS"}}
	for _, tc := range []struct {
		name     string
		after    int64
		received []int64
		want     Check
	}{
		{"exactly once", 0, []int64{1, 2, 3, 5, 6}, Check{Expected: 5, Received: 5}},
		{"from a resume point", 2, []int64{3, 5, 6}, Check{Expected: 3, Received: 3}},
		{"missing", 0, []int64{1, 2, 5, 6}, Check{Expected: 5, Received: 4, Missing: 1}},
		{"duplicated", 0, []int64{1, 2, 3, 3, 5, 6}, Check{Expected: 5, Received: 6, Duplicated: 1}},
		{"out of order", 0, []int64{1, 3, 2, 5, 6}, Check{Expected: 5, Received: 5, OutOfOrder: 1}},
		{"foreign", 0, []int64{1, 2, 3, 4, 5, 6}, Check{Expected: 5, Received: 6, Foreign: 1}},
		{"never published", 0, []int64{1, 2, 3, 5, 6, 7}, Check{Expected: 5, Received: 6, Foreign: 1}},
		{"replayed before the start point", 2, []int64{2, 3, 5, 6}, Check{Expected: 3, Received: 4, Early: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := testFeed().Check("s", alice, tc.after, tc.received)
			got.Examples = nil
			tc.want.Streams = 1
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.OK() != (tc.want.Missing+tc.want.Duplicated+tc.want.OutOfOrder+tc.want.Foreign+tc.want.Early == 0) {
				t.Errorf("OK() = %v", got.OK())
			}
		})
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    Mix
		wantErr bool
	}{
		{"role=0.08,user+role=0.02,everyone=0.001", Mix{Role: 0.08, UserOrRole: 0.02, Everyone: 0.001}, false},
		{" role=0.1 ,", Mix{Role: 0.1}, false},
		{"", Mix{}, false},
		{"role", Mix{}, true},
		{"role=-0.1", Mix{}, true},
		{"group=0.1", Mix{}, true},
		{"role=0.6,everyone=0.5", Mix{}, true},
	}
	for _, tt := range tests {
		got, err := ParseMix(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseMix(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
