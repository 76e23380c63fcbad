package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// loadAvg1 is the 1-minute load average, or -1 where /proc/loadavg is not
// available. Read before the bench starts, it is other work's load.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	x, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return x
}

// measurePhase runs fn under a sampler and records its profile in rep.
func measurePhase(ctx context.Context, e *env, rep *Report, phase string, fn func() error) error {
	s := startSampler(ctx, e.admin, 100*time.Millisecond)
	err := fn()
	rep.Profiles = append(rep.Profiles, s.Stop(phase))
	return err
}
