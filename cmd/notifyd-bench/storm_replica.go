package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// The storm with a read replica (-storm-replica N): what a streaming
// replica (DATABASE_REPLICA_URL) takes off the primary in a reconnect
// storm. A standby of the bench database needs a cluster of its own to
// copy, so the phase starts one (initdb, pg_stat_statements preloaded),
// seeds it once, copies it with pg_basebackup into a standby, and runs the
// storm N times on it, alternately without the replica and with it (nodes
// restarted between runs). For each run it reads the primary's and the
// standby's work in three stretches: the streams' opening (with
// -storm-behind, every opening replays from the table), the load before
// the kill, and the storm window after it: the CPU of every process of the
// cluster (/proc) and, from pg_stat_statements, the statements run on the
// bench database by kind. The nodes' notifyd_replica_reads_total says
// where their reads ran and why.

// StormReplicaResult is the storm run without and with a read replica.
type StormReplicaResult struct {
	Rows           int64             `json:"rows"`
	Behind         int64             `json:"behind"`
	StandbySeconds float64           `json:"standby_copy_seconds"`
	Runs           []StormReplicaRun `json:"runs"`
}

// StormReplicaRun is one storm and what it cost each cluster.
type StormReplicaRun struct {
	Replica bool         `json:"replica"`
	Storm   *StormResult `json:"storm"`
	// Primary and Standby: the work done in each stretch of the run
	// (opening, before the kill, after the kill).
	Primary []DBWork `json:"primary"`
	Standby []DBWork `json:"standby"`
	// Reads: notifyd_replica_reads_total and notifyd_stream_resumes_total
	// ("read source reason" → count) of every node once the streams were
	// open, and of the survivors over the storm window.
	ReadsOpening map[string]float64 `json:"reads_opening"`
	ReadsStorm   map[string]float64 `json:"reads_storm"`
}

// DBWork is what one cluster did in one stretch of a run.
type DBWork struct {
	Stretch string  `json:"stretch"`
	Seconds float64 `json:"seconds"`
	// CPUSeconds is every process of the cluster: backends, the WAL
	// sender or receiver and startup process, background workers.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Statements is pg_stat_statements on the bench database, by kind
	// (readKind); Total sums them.
	Statements map[string]StatementWork `json:"statements"`
	Total      StatementWork            `json:"total"`
}

// StatementWork is pg_stat_statements' counters, summed.
type StatementWork struct {
	Calls  int64   `json:"calls"`
	Rows   int64   `json:"rows"`
	ExecMs float64 `json:"exec_ms"`
	Blocks int64   `json:"shared_blocks"` // hit and read
}

// plus is w + sign*o, counter by counter.
func (w StatementWork) plus(o StatementWork, sign int64) StatementWork {
	return StatementWork{Calls: w.Calls + sign*o.Calls, Rows: w.Rows + sign*o.Rows, ExecMs: w.ExecMs + float64(sign)*o.ExecMs, Blocks: w.Blocks + sign*o.Blocks}
}

// runStormReplica is the storm phase with -storm-replica: see above. It
// returns the first run (without the replica) as the phase's storm.
func runStormReplica(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report, stderr io.Writer) (*StormResult, error) {
	dir, err := os.MkdirTemp("", "notifyd-bench-replica-")
	if err != nil {
		return newStormResult(cfg), err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres account must reach it when we are root
		return newStormResult(cfg), err
	}
	primary, err := startMeasuredCluster(ctx, filepath.Join(dir, "primary"), stderr)
	if err != nil {
		return newStormResult(cfg), err
	}
	defer func() { _ = primary.Stop(context.WithoutCancel(ctx)) }()
	prog.Printf("storm: a private primary on port %d (pg_stat_statements preloaded)", primary.Port())
	onPrimary := *nr
	onPrimary.cfg.ServerURL = primary.URL("postgres")
	e, seed, err := onPrimary.startReconnectNodes(ctx, cfg.Nodes, stormStreams(cfg), cfg.StormRows, prog)
	if err != nil {
		return newStormResult(cfg), err
	}
	defer e.Close()
	if _, err := e.admin.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return newStormResult(cfg), fmt.Errorf("storm: %w", err)
	}
	res := &StormReplicaResult{Rows: cfg.StormRows, Behind: cfg.StormBehind}
	rep.StormReplica = res
	copyStart := time.Now()
	standby, err := localdb.StartStandby(ctx, primary, localdb.ClusterOptions{DataDir: filepath.Join(dir, "standby"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return newStormResult(cfg), fmt.Errorf("storm: %w", err)
	}
	defer func() {
		e.Close() // the nodes first: they would log the standby's going
		_ = standby.Stop(context.WithoutCancel(ctx))
	}()
	res.StandbySeconds = time.Since(copyStart).Seconds()
	standbyURL, err := withDatabase(standby.URL("postgres"), e.db.Name)
	if err != nil {
		return newStormResult(cfg), err
	}
	prog.Printf("storm: a streaming standby on port %d, copied in %.1f s", standby.Port(), res.StandbySeconds)
	standbyPool, err := pgxpool.New(ctx, standbyURL)
	if err != nil {
		return newStormResult(cfg), err
	}
	defer standbyPool.Close()
	meters := []*dbMeter{{cluster: primary, pool: e.admin}, {cluster: standby, pool: standbyPool}}

	var first *StormResult
	for i := range cfg.StormReplica {
		withReplica := i%2 == 1
		if i > 0 {
			if err := e.restartAll(ctx, map[string]string{"DATABASE_REPLICA_URL": replicaSetting(standbyURL, withReplica)}); err != nil {
				return first, err
			}
		}
		run, err := runMeasuredStorm(ctx, cfg, &onPrimary, e, seed, meters, withReplica, prog, rep, stderr)
		res.Runs = append(res.Runs, run)
		if first == nil {
			first = run.Storm
		}
		if err != nil {
			return first, err
		}
	}
	return first, nil
}

// replicaSetting is a run's DATABASE_REPLICA_URL: the standby's, or none.
func replicaSetting(u string, with bool) string {
	if with {
		return u
	}
	return ""
}

// runMeasuredStorm runs one storm, reading the clusters' work at its
// moments.
func runMeasuredStorm(ctx context.Context, cfg config, nr *nodeRun, e *nodeEnv, seed *LivedSeed, meters []*dbMeter, withReplica bool,
	prog *progress, rep *Report, stderr io.Writer) (StormReplicaRun, error) {
	run := StormReplicaRun{Replica: withReplica}
	what := "without the replica"
	if withReplica {
		what = "with the replica"
	}
	prog.Printf("storm: run %s", what)
	snaps := map[string][]dbSnapshot{}
	var errs []error
	victim := cfg.Nodes - 1
	var atKill map[string]float64
	mark := func(moment string) {
		for _, m := range meters {
			s, err := m.snapshot(ctx)
			errs = append(errs, err)
			snaps[moment] = append(snaps[moment], s)
		}
		switch moment {
		case stormOpened:
			run.ReadsOpening = e.readCounts(ctx, -1)
		case stormKill:
			atKill = e.readCounts(ctx, victim)
		case stormWindowd:
			run.ReadsStorm = subCounts(e.readCounts(ctx, victim), atKill)
		}
	}
	storm, err := runStorm(ctx, cfg, nr, e, seed, mark, prog, rep, stderr)
	run.Storm = storm
	stretches := []struct{ name, from, to string }{
		{"opening", stormOpening, stormOpened}, {"before the kill", stormOpened, stormKill}, {"after the kill", stormKill, stormWindowd}}
	for _, st := range stretches {
		from, to := snaps[st.from], snaps[st.to]
		if len(from) != len(meters) || len(to) != len(meters) {
			continue
		}
		run.Primary = append(run.Primary, to[0].since(from[0], st.name))
		run.Standby = append(run.Standby, to[1].since(from[1], st.name))
	}
	return run, errors.Join(err, errors.Join(errs...))
}

// restartAll stops every node (a killed one is gone already) and starts
// them again on their addresses with env on top of their settings (an
// empty value removes the setting).
func (e *nodeEnv) restartAll(ctx context.Context, env map[string]string) error {
	if err := e.eachNode(func(i int) error {
		if !e.nodes[i].Running() {
			return nil // killed by the run before
		}
		return e.nodes[i].Stop(15 * time.Second)
	}); err != nil {
		return err
	}
	for k, v := range env {
		if v == "" {
			delete(e.settings, k)
		} else {
			e.settings[k] = v
		}
	}
	if err := e.eachNode(func(i int) error { return e.restartNode(ctx, i) }); err != nil {
		return err
	}
	for i := range e.nodes {
		e.set.SetDown(i, false)
	}
	return nil
}

// startMeasuredCluster starts a private cluster whose statements are
// counted (pg_stat_statements).
func startMeasuredCluster(ctx context.Context, dataDir string, stderr io.Writer) (*localdb.Cluster, error) {
	c, err := localdb.StartCluster(ctx, localdb.ClusterOptions{DataDir: dataDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, fmt.Errorf("start a private primary: %w", err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err == nil {
		// Otherwise as this machine's server at 5432 is set (autovacuum off;
		// the seed vacuums and analyzes its table itself).
		for _, set := range []string{`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`,
			`ALTER SYSTEM SET autovacuum = off`} {
			if _, err = conn.Exec(ctx, set); err != nil {
				break
			}
		}
		conn.Close(ctx)
	}
	if err == nil {
		err = c.Restart(ctx)
	}
	if err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("configure the private primary: %w", err)
	}
	return c, nil
}

// readCounts reads the replica and resume counters of every live node but
// skip, summed: "read source reason" → count, and "resumes <source>".
func (e *nodeEnv) readCounts(ctx context.Context, skip int) map[string]float64 {
	out := map[string]float64{}
	for i, n := range e.nodes {
		if i == skip || !e.nodes[i].Running() {
			continue
		}
		samples, err := cluster.Samples(ctx, http.DefaultClient, n.URL(), "notifyd_replica_reads_total", "notifyd_stream_resumes_total")
		if err != nil {
			continue
		}
		for _, s := range samples {
			out[countKey(s)] += s.Value
		}
	}
	return out
}

// countKey names a sample by its label values joined by spaces ("replay
// replica caught_up"; "resumes database" for notifyd_stream_resumes_total).
func countKey(s cluster.Sample) string {
	var key []string
	if s.Name == "notifyd_stream_resumes_total" {
		key = append(key, "resumes")
	}
	for _, l := range s.Labels {
		key = append(key, l.Value)
	}
	return strings.Join(key, " ")
}

func subCounts(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
