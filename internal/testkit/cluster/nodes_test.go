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
