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
	// (statementKind); Total sums them.
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
func runStormReplica(ctx context.Context, nr *nodeRun) (*StormResult, error) {
	cfg, prog, rep, stderr := nr.cfg, nr.prog, nr.rep, nr.stderr
	dir, err := os.MkdirTemp("", "notifyd-bench-replica-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres account must reach it when we are root
		return nil, err
	}
	primary, err := startMeasuredCluster(ctx, filepath.Join(dir, "primary"), stderr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = primary.Stop(context.WithoutCancel(ctx)) }()
	prog.Printf("storm: a private primary on port %d (pg_stat_statements preloaded)", primary.Port())
	onPrimary := *nr
	onPrimary.cfg.ServerURL = primary.URL("postgres")
	e, seed, err := onPrimary.startSeededNodes(ctx, cfg.Nodes, stormStreams(cfg), cfg.StormRows, nil)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	if _, err := e.admin.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	res := &StormReplicaResult{}
	rep.StormReplica = res
	copyStart := time.Now()
	standby, err := localdb.StartStandby(ctx, primary, localdb.ClusterOptions{DataDir: filepath.Join(dir, "standby"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	defer func() {
		e.Close() // the nodes first: they would log the standby's going
		_ = standby.Stop(context.WithoutCancel(ctx))
	}()
	res.StandbySeconds = time.Since(copyStart).Seconds()
	standbyURL := standby.URL(e.db.Name)
	prog.Printf("storm: a streaming standby on port %d, copied in %.1f s", standby.Port(), res.StandbySeconds)
	standbyPool, err := pgxpool.New(ctx, standbyURL)
	if err != nil {
		return nil, err
	}
	defer standbyPool.Close()
	meters := []*dbMeter{{cluster: primary, pool: e.admin}, {cluster: standby, pool: standbyPool}}

	var first *StormResult
	for i := range cfg.StormReplica {
		withReplica, replica := i%2 == 1, ""
		if withReplica {
			replica = standbyURL
		}
		if i > 0 {
			if err := e.restartAll(ctx, map[string]string{"DATABASE_REPLICA_URL": replica}); err != nil {
				return first, err
			}
		}
		run, err := runMeasuredStorm(ctx, e, seed, meters, withReplica)
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

// runMeasuredStorm runs one storm, reading the clusters' work at its
// moments.
func runMeasuredStorm(ctx context.Context, e *nodeEnv, seed *LivedSeed, meters []*dbMeter, withReplica bool) (StormReplicaRun, error) {
	cfg, prog := e.run.cfg, e.run.prog
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
	storm, err := runStorm(ctx, e, seed, mark)
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

// dbMeter reads what one PostgreSQL cluster has done so far: its
// processes' CPU and the statements run on the bench database.
type dbMeter struct {
	cluster *localdb.Cluster
	pool    *pgxpool.Pool // on the bench database of that cluster
}

// dbSnapshot is a dbMeter's reading.
type dbSnapshot struct {
	at    time.Time
	cpu   time.Duration
	stmts map[string]StatementWork
}

// snapshot reads the cluster now.
func (m *dbMeter) snapshot(ctx context.Context) (dbSnapshot, error) {
	s := dbSnapshot{at: time.Now(), stmts: map[string]StatementWork{}}
	cpu, err := cluster.TreeCPU(m.cluster.PID()) // the postmaster: the whole server
	if err != nil {
		return s, err
	}
	s.cpu = cpu
	rows, err := m.pool.Query(ctx, `SELECT query, calls, rows, total_exec_time, shared_blks_hit + shared_blks_read
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return s, fmt.Errorf("read pg_stat_statements on port %d: %w", m.cluster.Port(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var w StatementWork
		if err := rows.Scan(&q, &w.Calls, &w.Rows, &w.ExecMs, &w.Blocks); err != nil {
			return s, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		k := statementKind(q, "other (bench, probes)")
		s.stmts[k] = s.stmts[k].plus(w, 1)
	}
	return s, rows.Err()
}

// since is the work done between prev and s.
func (s dbSnapshot) since(prev dbSnapshot, stretch string) DBWork {
	w := DBWork{Stretch: stretch, Seconds: s.at.Sub(prev.at).Seconds(), CPUSeconds: (s.cpu - prev.cpu).Seconds(),
		Statements: map[string]StatementWork{}}
	for k, v := range s.stmts {
		d := v.plus(prev.stmts[k], -1)
		if d.Calls == 0 {
			continue
		}
		w.Statements[k] = d
		w.Total = w.Total.plus(d, 1)
	}
	return w
}

// writeStormReplica prints what the read replica took off the primary in
// each stretch of each storm run.
func (s *StormReplicaResult) write(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n9b. The storm without and with a read replica: a private primary (pg_stat_statements) seeded with %s rows, a pg_basebackup standby copied in %.1f s; streams first open %s seqs behind the head\n",
		num(float64(r.cfg.StormRows)), s.StandbySeconds, num(float64(r.cfg.StormBehind)))
	var rows []string
	for i, r := range s.Runs {
		name := fmt.Sprintf("%d without", i+1)
		if r.Replica {
			name = fmt.Sprintf("%d with", i+1)
		}
		for j, p := range r.Primary {
			var sb DBWork
			if j < len(r.Standby) {
				sb = r.Standby[j]
			}
			rows = append(rows, fmt.Sprintf("%s\t%s\t%.1f\t%.2f\t%s\t%.0f\t%s\t%.2f\t%s\t%.0f", name, p.Stretch, p.Seconds, p.CPUSeconds,
				num(float64(p.Total.Calls)), p.Total.ExecMs, num(float64(p.Total.Blocks)), sb.CPUSeconds, num(float64(sb.Total.Calls)), sb.Total.ExecMs))
		}
	}
	writeTable(w, "run\tstretch\ts\tprimary CPU s\tprimary calls\tprimary exec ms\tprimary blocks\tstandby CPU s\tstandby calls\tstandby exec ms", rows...)
	for i, r := range s.Runs {
		fmt.Fprintf(w, "   run %d (replica %v): reads once open %s; over the storm window %s\n", i+1, r.Replica, countsLine(r.ReadsOpening), countsLine(r.ReadsStorm))
		for _, p := range r.Primary {
			fmt.Fprintf(w, "     primary, %s: %s\n", p.Stretch, kindsLine(p.Statements))
		}
		for _, p := range r.Standby {
			if p.Total.Calls > 0 {
				fmt.Fprintf(w, "     standby, %s: %s\n", p.Stretch, kindsLine(p.Statements))
			}
		}
		if st := r.Storm; st != nil {
			fmt.Fprintf(w, "     storm: streams open in %.1f s; re-homed kill -> first new p50 %.0f ms, p99 %.0f ms; survivors commit -> receipt p99 %.0f ms; exactly-once %s\n",
				st.OpenSeconds, st.Rehomed.P50Ms, st.Rehomed.P99Ms, st.Survivors.P99Ms, checkLine(st.Check))
		}
	}
}

// countsLine lists counters, largest first.
func countsLine(m map[string]float64) string {
	return rankedLine(m, func(v float64) float64 { return v }, ", ", func(v float64) string { return num(v) })
}

// kindsLine lists statements by kind, most execution time first: calls,
// execution ms, shared blocks.
func kindsLine(m map[string]StatementWork) string {
	return rankedLine(m, func(v StatementWork) float64 { return v.ExecMs }, "; ", func(v StatementWork) string {
		return fmt.Sprintf("%s calls/%.0f ms/%s blocks", num(float64(v.Calls)), v.ExecMs, num(float64(v.Blocks)))
	})
}
