package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
)

// runNodePhases runs the selected phases that start notifyd as separate
// processes, each on its own fresh database. A correctness failure (a
// stream missing a notification, say) is an error; a figure that misses
// its target is one only with -strict.
func runNodePhases(ctx context.Context, cfg config, prog *progress, rep *Report, stderr io.Writer) error {
	if !slices.ContainsFunc(allPhases, func(p string) bool { return cfg.Phases[p] && !inProcess(p) && !standalone(p) }) {
		return nil
	}
	nr, err := startNodeRun(ctx, cfg, prog, stderr)
	if err != nil {
		return err
	}
	defer nr.Close()
	var errs []error
	// run runs phase if it was selected and the run goes on; met is
	// whether its figures met their targets (true with no result).
	run := func(phase string, fn func() (met bool, err error)) {
		if !cfg.Phases[phase] || ctx.Err() != nil {
			return
		}
		met, err := fn()
		errs = append(errs, err)
		if !met && cfg.Strict {
			errs = append(errs, fmt.Errorf("%s: target missed (-strict)", phase))
		}
	}
	run(phaseStreams, func() (bool, error) {
		res, err := runStreamsPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Streams = res
		return res == nil || res.TargetMet, err
	})
	run(phaseBroadcast, func() (bool, error) {
		res, err := runBroadcastPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Broadcast = res
		return res == nil || res.TargetMet, err
	})
	run(phaseResume, func() (bool, error) {
		res, err := runResumePhase(ctx, cfg, nr, prog, rep)
		rep.Resume = res
		return res == nil || res.TargetMet, err
	})
	run(phaseCluster, func() (bool, error) {
		res, err := runClusterPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Cluster = res
		return true, err // its figures are correctness: failures are errors
	})
	run(phaseLived, func() (bool, error) {
		res, err := runLivedPhase(ctx, cfg, nr, prog, rep)
		rep.Lived = res
		return res == nil || res.TargetMet, err
	})
	run(phaseStorm, func() (bool, error) {
		res, err := runStormPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Storm = res
		return res == nil || res.RehomeMet && res.SurvivorsMet, err
	})
	run(phaseRolling, func() (bool, error) {
		res, err := runRollingPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Rolling = res
		return res == nil || res.TargetMet, err
	})
	run(phaseVersus, func() (bool, error) {
		res, err := runVersusPhase(ctx, cfg, nr, prog, stderr)
		rep.Versus = res
		return res == nil || res.LatencyTargetMet && res.SatTargetMet, err
	})
	return errors.Join(errs...)
}
