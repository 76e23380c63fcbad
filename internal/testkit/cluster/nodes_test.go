package cluster

import "testing"

// TestPickIsUniform: with a node down, the reconnects it sheds spread evenly
// over the others (a load balancer's choice), whichever node is down and
// whichever the reader leaves.
func TestPickIsUniform(t *testing.T) {
	const n, picks = 4, 40000
	for down := range n {
		for _, not := range []int{-1, (down + 1) % n} {
			ns := NewNodes(make([]string, n))
			ns.SetDown(down, true)
			var count [n]int
			for range picks {
				count[ns.Pick(not)]++
			}
			choices := n - 1
			if not >= 0 {
				choices--
			}
			want := picks / choices
			for i, c := range count {
				switch {
				case i == down || i == not:
					if c != 0 {
						t.Errorf("down %d, not %d: node %d picked %d times, want never", down, not, i, c)
					}
				case c < want*9/10 || c > want*11/10:
					t.Errorf("down %d, not %d: node %d picked %d times of %d, want about %d", down, not, i, c, picks, want)
				}
			}
		}
	}
	ns := NewNodes(make([]string, 2))
	ns.SetDown(0, true)
	if got := ns.Pick(1); got != 1 {
		t.Errorf("only node 1 up, leaving it: picked %d, want 1 (the one up)", got)
	}
	ns.SetDown(1, true)
	if got := ns.Pick(-1); got < 0 || got > 1 {
		t.Errorf("every node down: picked %d", got)
	}
}

// TestPickLeastConnections: with PickLeastConnections a reader that moves
// goes to the node up holding the fewest readers, as a least-connections
// balancer sends it to a node just restarted.
func TestPickLeastConnections(t *testing.T) {
	ns := NewNodes(make([]string, 3))
	ns.PickLeastConnections()
	for range 5 {
		ns.Move(-1, 0)
	}
	ns.Move(-1, 1)
	ns.Move(-1, 1)
	for range 100 {
		if got := ns.Pick(0); got != 2 {
			t.Fatalf("picked node %d, want 2, which holds none", got)
		}
	}
	ns.Move(-1, 2)
	ns.Move(-1, 2)
	ns.Move(-1, 2) // node 2 now holds 3, node 1 holds 2
	if got := ns.Pick(0); got != 1 {
		t.Fatalf("picked node %d, want 1, which holds the fewest", got)
	}
	ns.SetDown(1, true)
	if got := ns.Pick(0); got != 2 {
		t.Fatalf("node 1 down: picked node %d, want 2", got)
	}
	ns.Move(2, 0)
	ns.Move(2, 0)
	ns.Move(2, 0)
	ns.SetDown(1, false)
	seen := map[int]int{}
	for range 1000 {
		seen[ns.Pick(-1)]++
	}
	if seen[0] != 0 || seen[1] != 0 || seen[2] != 1000 {
		t.Fatalf("picks %v, want node 2 (none) every time", seen)
	}
}
