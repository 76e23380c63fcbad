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

// Pick returns a random node that is up, other than not when there is a
// choice; with every node down it returns a random one.
func (ns *Nodes) Pick(not int) int {
	n := len(ns.urls)
	start := rand.IntN(n)
	for pass := range 2 {
		for k := range n {
			i := (start + k) % n
			if ns.Up(i) && (i != not || pass == 1) {
				return i
			}
		}
	}
	return start
}
