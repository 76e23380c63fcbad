package stream

import (
	"testing"
	"time"
)

// TestReleaseAfterBurstSubsides: memory is released once enough streams
// opened and the openings have nearly stopped, not while they go on, and
// not again within releaseEvery.
func TestReleaseAfterBurstSubsides(t *testing.T) {
	r := &releaser{after: 1000}
	done := make(chan int64, 1)
	report := func(streams int64, _ time.Duration) { done <- streams }
	now := time.Now()
	open := func(n int) {
		for range n {
			r.noteOpened()
		}
	}
	step := func(name string, opened int, want bool) {
		t.Helper()
		open(opened)
		now = now.Add(time.Second)
		if got := r.tick(now, report); got != want {
			t.Fatalf("%s: tick = %v, want %v", name, got, want)
		}
	}
	step("a few streams", 10, false)
	step("a burst under way", 2000, false)
	step("still opening at over 1% of the burst", 100, false)
	step("subsided", 5, true)
	if got := <-done; got != 2115 {
		t.Fatalf("released after %d streams, want 2115", got)
	}
	step("another burst within releaseEvery", 3000, false)
	step("it subsides within releaseEvery", 0, false)
	now = now.Add(releaseEvery)
	step("quiet after releaseEvery", 0, true)
	<-done

	off := &releaser{after: -1}
	for range 5000 {
		off.noteOpened()
	}
	if off.tick(now.Add(time.Hour), report) {
		t.Fatal("a negative ReleaseAfter released memory")
	}
}
