package main

import (
	"context"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// loadAvg1 is the 1-minute load average, or -1 where /proc/loadavg is not
// available. Read before the bench starts, it is other work's load.
func loadAvg1() float64 { return cluster.LoadAverage() }

// measurePhase runs fn under a sampler and records its profile in rep.
func measurePhase(ctx context.Context, e *env, rep *Report, phase string, fn func() error) error {
	s := startSampler(ctx, e.admin, 100*time.Millisecond)
	err := fn()
	rep.Profiles = append(rep.Profiles, s.Stop(phase))
	return err
}
