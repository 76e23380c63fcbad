package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// ProducerRun is one timed run of single-row inserts.
type ProducerRun struct {
	Table        string  `json:"table"` // "plain" or "trigger"
	Round        int     `json:"round"`
	Inserts      int64   `json:"inserts"`
	Seconds      float64 `json:"seconds"`
	Rate         float64 `json:"rate"`                    // inserts/s
	BacklogAtEnd int64   `json:"backlog_at_end"`          // queue items not yet published when the run ended
	DrainSeconds float64 `json:"drain_seconds,omitempty"` // then until the queue was empty
	// ProducerWaits and ServerWaits are what the producers' and the
	// server's backends were doing, sampled from pg_stat_activity.
	ProducerWaits []WaitShare `json:"producer_waits"`
	ServerWaits   []WaitShare `json:"server_waits,omitempty"`
	// PostgreSQL backend CPU microseconds per insert: the producers' own,
	// and the server's (worker, feed).
	ProducerCPU float64  `json:"producer_backend_cpu_us_per_insert"`
	ServerCPU   float64  `json:"server_backend_cpu_us_per_insert"`
	WAL         walDelta `json:"wal"`
}

// ProducerResult is phase 3: the trigger's cost to producers.
type ProducerResult struct {
	Runs          []ProducerRun `json:"runs"`
	PlainMedian   float64       `json:"plain_median_rate"`
	TriggerMedian float64       `json:"trigger_median_rate"`
	Ratio         float64       `json:"ratio"` // trigger / plain
	TargetRatio   float64       `json:"target_ratio"`
	TargetMet     bool          `json:"target_met"`
}

// runProducer compares single-row inserts into notify.notifications with
// inserts into bench_plain, which has its columns, defaults, constraints
// and indexes but none of its triggers: the difference is what the enqueue
// trigger, the wake-up trigger and the worker draining the queue at the
// same time cost the producers. Plain and trigger runs alternate, because
// on a shared, noisy machine a drift (autovacuum, a checkpoint, a
// neighbour) would otherwise land on one side only; medians of the rounds
// are compared. Every run starts after a CHECKPOINT and, after a trigger
// run, after the worker has drained the queue, so no run pays for the one
// before.
func runProducer(ctx context.Context, e *env) (*ProducerResult, error) {
	cfg, prog := e.cfg, e.prog
	// Issue 12's target: producers with the queue trigger (and a worker
	// publishing beside them) at 0.6 of the plain rate or better.
	res := &ProducerResult{TargetRatio: 0.6}
	prog.Printf("producer: %d goroutines, single-row autocommit inserts, %s per run, %d rounds of plain and trigger",
		cfg.Producers, cfg.ProducerDuration, cfg.Rounds)
	if _, err := e.admin.Exec(ctx, `CREATE TABLE bench_plain (LIKE notify.notifications INCLUDING ALL)`); err != nil {
		return res, fmt.Errorf("create bench_plain: %w", err)
	}
	pool, err := newPool(ctx, e.db.URL, cfg.Producers, producerApp)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	rates := map[string][]float64{}
	for round := 1; round <= cfg.Rounds; round++ {
		for _, table := range []string{"plain", "trigger"} {
			_, _ = e.admin.Exec(ctx, "CHECKPOINT") // best effort: needs a superuser
			sm := startSampler(ctx, e.admin, 50*time.Millisecond)
			walBefore := readWAL(ctx, e.admin)
			run, err := produce(ctx, e, pool, table, round)
			run.WAL = readWAL(ctx, e.admin).since(walBefore, run.Inserts, run.Seconds)
			prof := sm.Stop(table)
			run.ProducerWaits = prof.Waits[producerApp]
			if run.Inserts > 0 {
				run.ProducerCPU = prof.BackendCPU[producerApp] * 1e6 / float64(run.Inserts)
				run.ServerCPU = (prof.BackendCPU["notifyd"] + prof.BackendCPU["notifyd-listener"]) * 1e6 / float64(run.Inserts)
			}
			if err == nil && table == "trigger" {
				run.ServerWaits = prof.Waits["notifyd"]
				err = e.admin.QueryRow(ctx, `SELECT count(*) FROM notify.queue_items WHERE status IN ('pending', 'processing')`).Scan(&run.BacklogAtEnd)
				start := time.Now()
				if err == nil {
					err = cluster.WaitDrained(ctx, e.admin, cfg.Timeout)
				}
				run.DrainSeconds = time.Since(start).Seconds()
			}
			if err != nil {
				return res, fmt.Errorf("%s round %d: %w", table, round, err)
			}
			rates[table] = append(rates[table], run.Rate)
			res.Runs = append(res.Runs, run)
			prog.Printf("producer %s round %d: %.0f inserts/s (queue backlog at end %d, drained in %.2fs)",
				table, round, run.Rate, run.BacklogAtEnd, run.DrainSeconds)
		}
	}
	res.PlainMedian, res.TriggerMedian = stats.Median(rates["plain"]), stats.Median(rates["trigger"])
	res.Ratio = ratio(res.TriggerMedian, res.PlainMedian)
	res.TargetMet = res.Ratio >= res.TargetRatio
	return res, nil
}

// produce runs cfg.Producers goroutines inserting one row per autocommit
// statement into table until cfg.ProducerDuration has passed.
func produce(ctx context.Context, e *env, pool *pgxpool.Pool, table string, round int) (ProducerRun, error) {
	cfg, prog := e.cfg, e.prog
	stmt := `INSERT INTO bench_plain (message, target_user_id, data) VALUES ('bench producer', $1, jsonb_build_object('i', $2::int))`
	if table == "trigger" {
		stmt = `INSERT INTO notify.notifications (message, target_user_id, data) VALUES ('bench producer', $1, jsonb_build_object('i', $2::int))`
	}
	var n atomic.Int64
	stop := prog.Every(2*time.Second, func() string {
		return fmt.Sprintf("producer %s round %d: %d inserts", table, round, n.Load())
	})
	defer stop()
	start := time.Now()
	deadline := start.Add(cfg.ProducerDuration)
	g, gctx := errgroup.WithContext(ctx)
	for range cfg.Producers {
		g.Go(func() error {
			for i := 0; time.Now().Before(deadline); i++ {
				if _, err := pool.Exec(gctx, stmt, "bench-producer", i); err != nil {
					return fmt.Errorf("insert into %s: %w", table, err)
				}
				n.Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	elapsed := time.Since(start) // includes the inserts in flight at the deadline
	return ProducerRun{Table: table, Round: round, Inserts: n.Load(), Seconds: elapsed.Seconds(),
		Rate: float64(n.Load()) / elapsed.Seconds()}, err
}

// walCounters is a pg_stat_wal snapshot.
type walCounters struct {
	ok                  bool
	bytes               float64
	records, fpi, syncs int64
}

// walDelta is WAL written during a run. Single-row autocommit inserts are
// bound by commit flushes on most disks, so bytes per insert and flushes per
// second say why a trigger costs what it costs. pg_stat_wal is
// cluster-wide: anything else running on the server is included.
type walDelta struct {
	BytesPerInsert   float64 `json:"bytes_per_insert"`
	RecordsPerInsert float64 `json:"records_per_insert"`
	SyncsPerSecond   float64 `json:"syncs_per_second"`
	FullPageImages   int64   `json:"full_page_images"`
}

// readWAL snapshots pg_stat_wal; a server without it (before 14) reports
// nothing rather than failing the run.
func readWAL(ctx context.Context, pool *pgxpool.Pool) walCounters {
	var c walCounters
	c.ok = pool.QueryRow(ctx, `SELECT wal_bytes::float8, wal_records, wal_fpi, wal_sync FROM pg_stat_wal`).
		Scan(&c.bytes, &c.records, &c.fpi, &c.syncs) == nil
	return c
}

func (c walCounters) since(before walCounters, inserts int64, seconds float64) walDelta {
	if !c.ok || !before.ok || inserts == 0 || seconds <= 0 {
		return walDelta{}
	}
	n := float64(inserts)
	return walDelta{BytesPerInsert: (c.bytes - before.bytes) / n, RecordsPerInsert: float64(c.records-before.records) / n,
		SyncsPerSecond: float64(c.syncs-before.syncs) / seconds, FullPageImages: c.fpi - before.fpi}
}

// write prints the runs, why they went as they did, and the ratio of
// medians.
func (p *ProducerResult) write(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n3. Producer insert rate, trigger vs plain table: %d goroutines, single-row autocommit INSERTs, %.0f s per run, alternating\n",
		r.cfg.Producers, r.cfg.ProducerDuration.Seconds())
	writeTable(w, "run\ttable\tinserts/s\tinserts\tbacklog at end\tdrained in\tWAL/insert\tWAL records/insert\tWAL flushes/s\tproducer backend CPU/insert\tserver backend CPU/insert",
		rowsOf(p.Runs, func(i int, run ProducerRun) string {
			drain := "-"
			if run.Table == "trigger" {
				drain = fmt.Sprintf("%.2f s", run.DrainSeconds)
			}
			return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s B\t%.1f\t%s\t%.0f µs\t%.0f µs", i+1, run.Table, num(run.Rate), num(float64(run.Inserts)),
				num(float64(run.BacklogAtEnd)), drain, num(run.WAL.BytesPerInsert), run.WAL.RecordsPerInsert, num(run.WAL.SyncsPerSecond),
				run.ProducerCPU, run.ServerCPU)
		})...)
	fmt.Fprintln(w, "   (WAL figures are pg_stat_wal deltas: cluster-wide, so other databases' activity is included)")
	fmt.Fprintln(w, "   what the backends were doing (pg_stat_activity samples every 50 ms; idle = waiting for the client):")
	for i, run := range p.Runs {
		fmt.Fprintf(w, "     run %d %-7s producers: %s\n", i+1, run.Table, shares(run.ProducerWaits))
		if len(run.ServerWaits) > 0 {
			fmt.Fprintf(w, "     run %d %-7s server:    %s\n", i+1, run.Table, shares(run.ServerWaits))
		}
	}
	fmt.Fprintf(w, "   medians: plain %s/s, trigger %s/s; ratio trigger/plain %.2f (target >= %.2f: %s)\n",
		num(p.PlainMedian), num(p.TriggerMedian), p.Ratio, p.TargetRatio, verdict(p.TargetMet))
}
