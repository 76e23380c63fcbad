// Package testkit holds what only tests and the benchmark use, apart from
// the product: the harness packages below it (apptest, cluster, fleet,
// hydratest, pgbouncertest, pgtest, stats), and Slow.
package testkit

import (
	"testing"
	"time"
)

// Slow marks a test that `make check` (go test -short) leaves out: one that
// takes seconds, or starts processes (private PostgreSQL clusters, Hydra,
// nginx, notifyd nodes). `make test`, which CI runs, runs it.
func Slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: make test runs it; make check (-short) leaves it out")
	}
}

// Eventually polls cond every 5 ms until it holds, failing the test once
// within has passed first; what names the awaited state in the failure.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		<-tick.C
	}
}
