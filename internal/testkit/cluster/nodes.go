package cluster

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
)

// Nodes is the set of node URLs readers connect to, with the ones known to
// be down (a reader also finds out by itself when a connection is refused).
// It is safe for concurrent use.
type Nodes struct {
	urls []string
	down []atomic.Bool
	// held counts the readers whose current or next connection is to each
	// node (Move); leastConn makes Pick choose by it.
	held      []atomic.Int64
	leastConn bool
}

// NewNodes returns the set of urls, all up, picked among at random.
func NewNodes(urls []string) *Nodes {
	return &Nodes{urls: urls, down: make([]atomic.Bool, len(urls)), held: make([]atomic.Int64, len(urls))}
}

// PickLeastConnections makes Pick choose, among the nodes up, one that
// holds the fewest readers of this set, as a least-connections load
// balancer does (nginx least_conn, HAProxy leastconn): a node that comes
// back empty after a restart then takes the next reconnects. Call it before
// any reader starts.
func (ns *Nodes) PickLeastConnections() { ns.leastConn = true }

// Move records that a reader's connections go to node to instead of from
// (negative: none).
func (ns *Nodes) Move(from, to int) {
	if from >= 0 {
		ns.held[from].Add(-1)
	}
	if to >= 0 {
		ns.held[to].Add(1)
	}
}

// Len is the number of nodes.
func (ns *Nodes) Len() int { return len(ns.urls) }

// URL is node i's base URL.
func (ns *Nodes) URL(i int) string { return ns.urls[i] }

// SetDown marks node i down (or up again).
func (ns *Nodes) SetDown(i int, down bool) { ns.down[i].Store(down) }

// Up reports whether node i is not known to be down.
func (ns *Nodes) Up(i int) bool { return !ns.down[i].Load() }

// Pick returns a node chosen uniformly among those that are up (with
// PickLeastConnections, among those of them holding the fewest readers),
// other than not when there is a choice; with every node down it returns a
// random one.
// Uniform matters: a reader that reconnects is the load balancer's choice,
// and a pick that favours the node after a down one (scanning on from a
// random start did) sends it twice the reconnects of a node that stops.
func (ns *Nodes) Pick(not int) int {
	var up, others []int
	for i := range ns.urls {
		if ns.Up(i) {
			up = append(up, i)
			if i != not {
				others = append(others, i)
			}
		}
	}
	if ns.leastConn && len(others) > 0 {
		others = ns.leastHeld(others)
	}
	switch {
	case len(others) > 0:
		return others[rand.IntN(len(others))]
	case len(up) > 0:
		return up[rand.IntN(len(up))]
	}
	return rand.IntN(len(ns.urls))
}

// leastHeld is the nodes of candidates that hold the fewest readers.
func (ns *Nodes) leastHeld(candidates []int) []int {
	least := int64(math.MaxInt64)
	var out []int
	for _, i := range candidates {
		switch n := ns.held[i].Load(); {
		case n < least:
			least, out = n, append(out[:0], i)
		case n == least:
			out = append(out, i)
		}
	}
	return out
}
