package cluster

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TreeCPU counts a child's CPU: while it runs (a live child) and once it
// has exited and been reaped.
func TestTreeCPUCountsChildren(t *testing.T) {
	self := os.Getpid()
	spin := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5")
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	defer spin.Process.Kill()
	// The loop's CPU, seen through the live child.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tree, err := TreeCPU(self)
		if err != nil {
			t.Fatal(err)
		}
		own, err := CPUTime(self)
		if err != nil {
			t.Fatal(err)
		}
		if tree-own >= 100*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a spinning child's CPU is not in the tree: tree %s, own %s", tree, own)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Gone and reaped: its CPU is the parent's children's.
	_ = spin.Process.Kill()
	_ = spin.Wait()
	tree, err := TreeCPU(self)
	if err != nil {
		t.Fatal(err)
	}
	// (At least half what was seen live: a reaped child's CPU is summed
	// from its ticks, which may round below what its live stat showed.)
	if own, _ := CPUTime(self); tree-own < 50*time.Millisecond {
		t.Errorf("a reaped child's CPU is not in the tree: tree %s, own %s", tree, own)
	}
}
