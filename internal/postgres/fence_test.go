package postgres

import (
	"context"
	"sync"
	"testing"
	"time"
)

// A history page's fence must be read after its request arrived, or the
// page could miss the user's own write of a moment ago: requests that
// arrive while a fence read runs share the next read, not that one.
func TestFenceGroupReadsAfterEachCaller(t *testing.T) {
	var g fenceGroup
	started := make(chan int, 4)
	release := make(chan struct{})
	reads := 0
	read := func(context.Context) (Fence, error) {
		reads++ // one read at a time (run is sequential)
		started <- reads
		<-release
		return Fence{LSN: int64(reads)}, nil
	}
	ctx := t.Context()
	got := make([]Fence, 3)
	var wg sync.WaitGroup
	call := func(i int) {
		defer wg.Done()
		f, err := g.get(ctx, read)
		if err != nil {
			t.Error(err)
		}
		got[i] = f
	}
	wg.Add(1)
	go call(0)
	if n := <-started; n != 1 {
		t.Fatalf("read %d started first", n)
	}
	// Two more arrive while the first read runs.
	wg.Add(2)
	go call(1)
	go call(2)
	waitJoined(t, &g, 2)
	release <- struct{}{} // the first read ends
	if n := <-started; n != 2 {
		t.Fatalf("read %d started second", n)
	}
	release <- struct{}{}
	wg.Wait()
	if got[0].LSN != 1 || got[1].LSN != 2 || got[2].LSN != 2 || reads != 2 {
		t.Fatalf("fences %+v after %d reads: want the first caller's from read 1, the others' from one read 2", got, reads)
	}
}

// waitJoined waits until n callers wait for the next read.
func waitJoined(t *testing.T, g *fenceGroup, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		g.mu.Lock()
		joined := 0
		if g.next != nil {
			joined = g.next.callers
		}
		g.mu.Unlock()
		if joined == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined the next read, want %d", joined, n)
		}
		time.Sleep(time.Millisecond)
	}
}
