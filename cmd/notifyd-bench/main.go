// Command notifyd-bench measures notifyd against the targets the project
// states for it, on fresh PostgreSQL databases. It is a list of phases
// (-phases; -h lists them with their sizes), each built from the test
// harness under internal/testkit:
//
//   - in process (app.Start, as `notifyd serve` runs it): throughput,
//     latency, producer and snapshot measure the pipeline from the producer's
//     commit to the stream's read;
//   - churn drives the pipeline's statements itself, before and after
//     millions of notifications passed through;
//   - streams, broadcast, resume, cluster, lived, storm, rolling, versus and burst
//     run notifyd as separate processes (package cluster: nodes, their /proc
//     figures and metrics, readers, the exactly-once check) with the
//     streams' client side in processes of their own (package fleet).
//
// Every latency is summarised the same way (package stats).
//
// Client and server share the machine, so every figure is bounded by its
// cores; the report names the core count, the PostgreSQL version and every
// setting used, so figures from different machines are not mistaken for one
// another. Rates move with whatever else runs on the machine, so the report
// also says where the time went in terms that move less: CPU seconds of
// each group of PostgreSQL backends, which statement the server's backends
// were running, wait events, WAL per insert, and how busy other databases
// were. -db-set and -node-env apply a setting to the bench database or the
// nodes, to test a hypothesis without editing the server; the report marks
// such runs as experiments. The Makefile's bench targets run the phase
// groups (`make bench` the default phases).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
)

func main() {
	// The signal context stays registered until Run returns, so a second
	// Ctrl-C during cleanup is caught too and the database is still dropped.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) > 1 && os.Args[1] == fleet.ChildArg { // a node phase's client process
		err := fleet.RunChild(ctx, os.Stdin, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "notifyd-bench client:", err)
			os.Exit(1)
		}
		return
	}
	gin.SetMode(gin.ReleaseMode)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifyd-bench:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// Run parses args, runs the selected phases against fresh databases and
// writes the report to stdout and progress to stderr. The databases are
// dropped before Run returns, whatever happened. A correctness failure (a
// stream missing a notification, say) is an error; a figure that misses
// its target is one only with -strict.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	prog := &progress{w: stderr, start: time.Now()}
	loadBefore := cluster.LoadAverage() // other work's: before the bench adds its own
	rep := &Report{cfg: cfg, Settings: cfg.Flags}
	b := bench{cfg: cfg, prog: prog, rep: rep, stderr: stderr}
	defer func() {
		if ctx.Err() != nil {
			err = errors.New("interrupted: the report covers the phases that finished")
		}
		if cfg.JSON {
			err = errors.Join(err, rep.WriteJSON(stdout))
		} else {
			rep.WriteTable(stdout)
		}
	}()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	var errs []error
	// run runs phase if it was selected and the run goes on; met is
	// whether its figures met their targets.
	run := func(phase string, fn func(context.Context) (met bool, err error)) {
		if !cfg.Phases[phase] || ctx.Err() != nil {
			return
		}
		met, err := fn(ctx)
		errs = append(errs, err)
		if !met && cfg.Strict {
			errs = append(errs, fmt.Errorf("%s: target missed (-strict)", phase))
		}
	}
	if slices.ContainsFunc(allPhases, func(p string) bool { return cfg.Phases[p] && inProcess(p) }) {
		if err := runInProcess(ctx, b); err != nil {
			return err
		}
	} else {
		rep.Environment = describeServer(ctx, cfg.ServerURL)
	}
	rep.Environment.LoadBefore = loadBefore
	keep(run, phaseChurn, &rep.Churn, func(r *ChurnResult) bool { return r.TargetMet }, b.runChurn)
	if !slices.ContainsFunc(allPhases, func(p string) bool { return cfg.Phases[p] && !inProcess(p) && p != phaseChurn }) {
		return errors.Join(errs...)
	}
	nr, err := startNodeRun(ctx, b)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer nr.Close()
	keep(run, phaseStreams, &rep.Streams, func(r *StreamsResult) bool { return r.TargetMet }, nr.runStreamsPhase)
	keep(run, phaseBroadcast, &rep.Broadcast, func(r *BroadcastResult) bool { return r.TargetMet }, nr.runBroadcastPhase)
	keep(run, phaseResume, &rep.Resume, func(r *ResumeResult) bool { return r.TargetMet }, nr.runResumePhase)
	keep(run, phaseCluster, &rep.Cluster, func(*ClusterResult) bool { return true }, nr.runClusterPhase) // correctness: failures are errors
	keep(run, phaseLived, &rep.Lived, func(r *LivedResult) bool { return r.TargetMet }, nr.runLivedPhase)
	keep(run, phaseStorm, &rep.Storm, func(r *StormResult) bool { return r.RehomeMet && r.SurvivorsMet }, nr.runStormPhase)
	keep(run, phaseRolling, &rep.Rolling, func(r *RollingResult) bool { return r.TargetMet }, nr.runRollingPhase)
	keep(run, phaseVersus, &rep.Versus, func(r *VersusResult) bool { return r.LatencyTargetMet && r.SatTargetMet }, nr.runVersusPhase)
	keep(run, phaseBurst, &rep.Burst, func(r *BurstResult) bool { return r.TargetMet }, nr.runBurstPhase)
	return errors.Join(errs...)
}

// bench is what every phase is given besides its context: the settings,
// where progress and the servers' logs go, and the report, to which the
// phases add their samplers' profiles.
type bench struct {
	cfg    config
	prog   *progress
	rep    *Report
	stderr io.Writer
}

// keep runs a phase with run, keeping its result in *slot; met says
// whether a result met its targets.
func keep[R any](run func(string, func(context.Context) (bool, error)), phase string, slot **R, met func(*R) bool,
	fn func(context.Context) (*R, error)) {
	run(phase, func(ctx context.Context) (bool, error) {
		res, err := fn(ctx)
		*slot = res
		return res == nil || met(res), err
	})
}

// runInProcess runs the phases that start the server inside the bench, on
// one fresh database, in a fixed order: throughput first, on an empty
// database, and the producer comparison last, since it leaves the most
// rows behind. Each runs under a sampler (its profile in the report).
func runInProcess(ctx context.Context, b bench) (err error) {
	cfg, prog, rep := b.cfg, b.prog, b.rep
	db, err := createDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	prog.Printf("created database %s", db.Name)
	defer func() { err = errors.Join(err, db.Drop()) }()
	e, err := startEnv(ctx, b, db)
	if err != nil {
		return err
	}
	defer e.Close()
	rep.Environment = describe(ctx, e.admin, db.Name, cfg.ServerURL)
	prog.Printf("server %s, %d workers, pool %d; PostgreSQL %s; %d cores",
		e.app.URL(), cfg.ServerWorkers, cfg.ServerPool, rep.Environment.PostgresVersion, rep.Environment.Cores)
	measured := func(phase, profile string, fn func() error) error {
		if !cfg.Phases[phase] {
			return nil
		}
		s := startSampler(ctx, e.admin, 100*time.Millisecond)
		err := fn()
		rep.Profiles = append(rep.Profiles, s.Stop(profile))
		if err != nil {
			return fmt.Errorf("%s: %w", profile, err)
		}
		return nil
	}
	err = measured(phaseThroughput, phaseThroughput, func() (err error) {
		rep.Throughput, err = runThroughput(ctx, e)
		return err
	})
	for _, rate := range cfg.LatencyRates {
		if err == nil {
			err = measured(phaseLatency, fmt.Sprintf("latency %d/s", rate), func() error {
				res, err := runLatency(ctx, e, int(rate))
				if res != nil {
					rep.Latency = append(rep.Latency, *res)
				}
				return err
			})
		}
	}
	if err == nil {
		err = measured(phaseSnapshot, phaseSnapshot, func() (err error) {
			rep.Snapshot, err = runSnapshot(ctx, e)
			return err
		})
	}
	if err == nil {
		err = measured(phaseProducer, phaseProducer, func() (err error) {
			rep.Producer, err = runProducer(ctx, e)
			return err
		})
	}
	return err
}

// progress writes timestamped progress lines to stderr, so stdout carries
// only the report (and stays parseable with -json).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *progress) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// Every prints line() every d until the returned stop is called, so a long
// phase shows it is moving (or that it is stuck).
func (p *progress) Every(d time.Duration, line func() string) (stop func()) {
	return repeat(d, func() { p.Printf("%s", line()) })
}

// repeat runs fn every d until the returned stop is called.
func repeat(d time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// slots runs fn(ctx, w, k) for k = 0, 1, … from n goroutines (w: which):
// slot k is taken by whichever is free and started at start + k*every,
// while more(k, that time) holds, so a slow slot delays only itself. The
// first error ends the run, cancelling the others' context.
func slots(ctx context.Context, n int, start time.Time, every time.Duration, more func(k int64, due time.Time) bool,
	fn func(ctx context.Context, w int, k int64) error) error {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for w := range n {
		g.Go(func() error {
			for k := next.Add(1) - 1; more(k, start.Add(time.Duration(k)*every)); k = next.Add(1) - 1 {
				if err := sleepUntil(ctx, start.Add(time.Duration(k)*every)); err != nil {
					return err
				}
				if err := fn(ctx, w, k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// sleepUntil sleeps until t unless ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error { return sleepUntil(ctx, time.Now().Add(d)) }
