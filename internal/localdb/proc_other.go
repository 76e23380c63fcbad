//go:build unix && !linux

package localdb

import (
	"errors"
	"syscall"
)

// setParentDeathSignal is Linux-only; elsewhere a crashed process can leave
// its cluster running until the next Stop of the same data directory.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// childPIDs is not needed where backends cannot be listed cheaply: they exit
// on their own once they notice the postmaster is gone.
func childPIDs(int) []int { return nil }

func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
