package cluster

import (
	"math/rand/v2"
	"sync/atomic"
)

// Nodes is the set of node URLs readers connect to, with the ones known to
// be down (a reader also finds out by itself when a connection is refused).
// It is safe for concurrent use.
type Nodes struct {
	urls []string
	down []atomic.Bool
}

// NewNodes returns the set of urls, all up.
func NewNodes(urls []string) *Nodes {
	return &Nodes{urls: urls, down: make([]atomic.Bool, len(urls))}
}

// Len is the number of nodes.
func (ns *Nodes) Len() int { return len(ns.urls) }

// URL is node i's base URL.
func (ns *Nodes) URL(i int) string { return ns.urls[i] }

// SetDown marks node i down (or up again).
func (ns *Nodes) SetDown(i int, down bool) { ns.down[i].Store(down) }

// Up reports whether node i is not known to be down.
func (ns *Nodes) Up(i int) bool { return !ns.down[i].Load() }

// Pick returns a node chosen uniformly among those that are up, other than
// not when there is a choice; with every node down it returns a random one.
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
	switch {
	case len(others) > 0:
		return others[rand.IntN(len(others))]
	case len(up) > 0:
		return up[rand.IntN(len(up))]
	}
	return rand.IntN(len(ns.urls))
}
