// Package testkit holds what only tests and the benchmark use, apart from
// the product: the harness packages below it (apptest, cluster, fleet,
// hydratest, pgbouncertest, pgtest, stats), and Slow.
package testkit

import "testing"

// Slow marks a test that `make check` (go test -short) leaves out: one that
// takes seconds, or starts processes (private PostgreSQL clusters, Hydra,
// nginx, notifyd nodes). `make test`, which CI runs, runs it.
func Slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: make test runs it; make check (-short) leaves it out")
	}
}
