// Package testkit holds what only tests and the benchmark use, apart from
// the product: the harness packages below it (apptest, cluster, fleet,
// hydratest, pgbouncertest, pgtest, stats), and Slow.
package testkit

import (
	"net"
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

// FreePort is a TCP port that was free on 127.0.0.1 a moment ago, for a
// child process to listen on (it may be taken meanwhile: callers retry).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
