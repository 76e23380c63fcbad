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
	missed := func(phase string, met bool) {
		if !met && cfg.Strict {
			errs = append(errs, fmt.Errorf("%s: target missed (-strict)", phase))
		}
	}
	if cfg.Phases[phaseStreams] {
		res, err := runStreamsPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Streams = res
		errs = append(errs, err)
		if res != nil {
			missed(phaseStreams, res.TargetMet)
		}
	}
	if cfg.Phases[phaseBroadcast] && ctx.Err() == nil {
		res, err := runBroadcastPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Broadcast = res
		errs = append(errs, err)
		if res != nil {
			missed(phaseBroadcast, res.TargetMet)
		}
	}
	if cfg.Phases[phaseResume] && ctx.Err() == nil {
		res, err := runResumePhase(ctx, cfg, nr, prog, rep)
		rep.Resume = res
		errs = append(errs, err)
		if res != nil {
			missed(phaseResume, res.TargetMet)
		}
	}
	if cfg.Phases[phaseCluster] && ctx.Err() == nil {
		res, err := runClusterPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Cluster = res
		errs = append(errs, err)
	}
	if cfg.Phases[phaseLived] && ctx.Err() == nil {
		res, err := runLivedPhase(ctx, cfg, nr, prog, rep)
		rep.Lived = res
		errs = append(errs, err)
		if res != nil {
			missed(phaseLived, res.TargetMet)
		}
	}
	if cfg.Phases[phaseStorm] && ctx.Err() == nil {
		res, err := runStormPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Storm = res
		errs = append(errs, err)
		if res != nil {
			missed(phaseStorm, res.RehomeMet && res.SurvivorsMet)
		}
	}
	if cfg.Phases[phaseRolling] && ctx.Err() == nil {
		res, err := runRollingPhase(ctx, cfg, nr, prog, rep, stderr)
		rep.Rolling = res
		errs = append(errs, err)
		if res != nil {
			missed(phaseRolling, res.TargetMet)
		}
	}
	if cfg.Phases[phaseVersus] && ctx.Err() == nil {
		res, err := runVersusPhase(ctx, cfg, nr, prog, stderr)
		rep.Versus = res
		errs = append(errs, err)
		if res != nil {
			missed(phaseVersus, res.LatencyTargetMet && res.SatTargetMet)
		}
	}
	return errors.Join(errs...)
}
