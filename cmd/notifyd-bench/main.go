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
//   - streams, broadcast, resume, cluster, lived, storm, rolling and versus
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
	"syscall"

	"github.com/gin-gonic/gin"

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

// Run parses args, runs the selected phases against a fresh database and
// writes the report to stdout and progress to stderr. The database is
// dropped before Run returns, whatever happened.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	prog := newProgress(stderr)
	loadBefore := cluster.LoadAverage() // other work's: before the bench adds its own
	rep := &Report{Settings: cfg.settings()}
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

	if slices.ContainsFunc(allPhases, func(p string) bool { return cfg.Phases[p] && inProcess(p) }) {
		if err := runInProcess(ctx, cfg, prog, rep, stderr); err != nil {
			return err
		}
	} else {
		rep.Environment = describeServer(ctx, cfg.ServerURL)
	}
	rep.Environment.LoadBefore = loadBefore
	if cfg.Phases[phaseChurn] {
		res, err := runChurn(ctx, cfg, prog)
		rep.Churn = res
		if err != nil {
			return fmt.Errorf("churn: %w", err)
		}
		if !res.TargetMet && cfg.Strict {
			return errors.New("churn: target missed (-strict)")
		}
	}
	return runNodePhases(ctx, cfg, prog, rep, stderr)
}

// runInProcess runs the phases that start the server inside the bench, on
// one fresh database.
func runInProcess(ctx context.Context, cfg config, prog *progress, rep *Report, stderr io.Writer) (err error) {
	db, err := createDatabase(ctx, cfg.ServerURL, cfg.DBSettings)
	if err != nil {
		return err
	}
	prog.Printf("created database %s", db.Name)
	defer func() {
		if derr := db.Drop(); derr != nil {
			err = errors.Join(err, derr)
		} else {
			prog.Printf("dropped database %s", db.Name)
		}
	}()
	env, err := startEnv(ctx, cfg, db, stderr)
	if err != nil {
		return err
	}
	defer env.Close()
	rep.Environment = describeEnvironment(ctx, env)
	prog.Printf("server %s, %d workers, pool %d; PostgreSQL %s; %d cores",
		env.app.URL(), cfg.ServerWorkers, cfg.ServerPool, rep.Environment.PostgresVersion, rep.Environment.Cores)
	return runPhases(ctx, cfg, env, prog, rep)
}

// runPhases runs the selected phases in a fixed order: throughput first,
// on an empty database, and the producer comparison last, since it leaves
// the most rows behind.
func runPhases(ctx context.Context, cfg config, env *env, prog *progress, rep *Report) error {
	// measured runs fn under a sampler whose profile is named profile; an
	// error ends the run, labelled with what.
	measured := func(profile, what string, fn func() error) error {
		if err := measurePhase(ctx, env, rep, profile, fn); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if cfg.Phases[phaseThroughput] {
		if err := measured(phaseThroughput, "throughput", func() (err error) {
			rep.Throughput, err = runThroughput(ctx, cfg, env, prog)
			return err
		}); err != nil {
			return err
		}
	}
	for _, rate := range cfg.LatencyRates {
		if !cfg.Phases[phaseLatency] {
			break
		}
		if err := measured(fmt.Sprintf("latency %d/s", rate), fmt.Sprintf("latency at %d/s", rate), func() error {
			res, err := runLatency(ctx, cfg, env, prog, rate)
			if res != nil {
				rep.Latency = append(rep.Latency, *res)
			}
			return err
		}); err != nil {
			return err
		}
	}
	if cfg.Phases[phaseSnapshot] {
		if err := measured(phaseSnapshot, "held snapshot", func() (err error) {
			rep.Snapshot, err = runSnapshot(ctx, cfg, env, prog)
			return err
		}); err != nil {
			return err
		}
	}
	if cfg.Phases[phaseProducer] {
		return measured(phaseProducer, "producer", func() (err error) {
			rep.Producer, err = runProducer(ctx, cfg, env, prog)
			return err
		})
	}
	return nil
}
