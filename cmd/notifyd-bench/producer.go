package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// The two tables of the comparison. bench_plain has notify.notifications'
// columns, defaults, constraints and indexes but none of its triggers, so
// the difference is what the enqueue trigger, the wake-up trigger and the
// worker draining the queue at the same time cost the producers.
const (
	createPlain   = `CREATE TABLE bench_plain (LIKE notify.notifications INCLUDING ALL)`
	insertPlain   = `INSERT INTO bench_plain (message, target_user_id, data) VALUES ('bench producer', $1, jsonb_build_object('i', $2::int))`
	insertTrigger = `INSERT INTO notify.notifications (message, target_user_id, data) VALUES ('bench producer', $1, jsonb_build_object('i', $2::int))`
)

// producerApp is the application_name of every producer connection.
const producerApp = "notifyd-bench-producer"

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
	// ProducerCPU and ServerCPU are PostgreSQL backend CPU microseconds per
	// insert: the producers' own, and the server's (worker, feed).
	ProducerCPU float64 `json:"producer_backend_cpu_us_per_insert"`
	ServerCPU   float64 `json:"server_backend_cpu_us_per_insert"`
	// WAL is the cluster's WAL activity during the run (pg_stat_wal is
	// cluster-wide: anything else running on the server is included).
	WAL walDelta `json:"wal"`
}

// ProducerResult is phase 3: the trigger's cost to producers.
type ProducerResult struct {
	Producers     int           `json:"producers"`
	Seconds       float64       `json:"seconds_per_run"`
	Rounds        int           `json:"rounds"`
	Runs          []ProducerRun `json:"runs"`
	PlainMedian   float64       `json:"plain_median_rate"`
	TriggerMedian float64       `json:"trigger_median_rate"`
	Ratio         float64       `json:"ratio"` // trigger / plain
	TargetRatio   float64       `json:"target_ratio"`
	TargetMet     bool          `json:"target_met"`
}

// runProducer alternates plain and trigger runs, because on a shared,
// noisy machine a drift (autovacuum, a checkpoint, a neighbour) would
// otherwise land on one side only; medians of the rounds are compared.
// Every run starts after a CHECKPOINT and, after a trigger run, after the
// worker has drained the queue, so no run pays for the one before.
func runProducer(ctx context.Context, cfg config, e *env, prog *progress) (*ProducerResult, error) {
	res := &ProducerResult{Producers: cfg.Producers, Seconds: cfg.ProducerDuration.Seconds(), Rounds: cfg.Rounds, TargetRatio: 0.8}
	prog.Printf("producer: %d goroutines, single-row autocommit inserts, %s per run, %d rounds of plain and trigger",
		cfg.Producers, cfg.ProducerDuration, cfg.Rounds)
	if _, err := e.admin.Exec(ctx, createPlain); err != nil {
		return res, fmt.Errorf("create bench_plain: %w", err)
	}
	pool, err := newPool(ctx, e.db.URL, cfg.Producers, producerApp)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	var plain, trig []float64
	for round := 1; round <= cfg.Rounds; round++ {
		for _, table := range []string{"plain", "trigger"} {
			_, _ = e.admin.Exec(ctx, "CHECKPOINT") // best effort: needs a superuser
			sm := startSampler(ctx, e.admin, 50*time.Millisecond)
			walBefore := readWAL(ctx, e.admin)
			run, err := produce(ctx, cfg, pool, prog, table, round)
			run.WAL = readWAL(ctx, e.admin).since(walBefore, run.Inserts, run.Seconds)
			prof := sm.Stop(table)
			run.ProducerWaits = prof.Waits[producerApp]
			if table == "trigger" {
				run.ServerWaits = prof.Waits["notifyd"]
			}
			if run.Inserts > 0 {
				run.ProducerCPU = prof.BackendCPU[producerApp] * 1e6 / float64(run.Inserts)
				run.ServerCPU = (prof.BackendCPU["notifyd"] + prof.BackendCPU["notifyd-listener"]) * 1e6 / float64(run.Inserts)
			}
			if err != nil {
				return res, err
			}
			if table == "trigger" {
				if run.BacklogAtEnd, err = e.queueBacklog(ctx); err != nil {
					return res, err
				}
				d, err := e.waitDrained(ctx)
				run.DrainSeconds = d.Seconds()
				if err != nil {
					return res, fmt.Errorf("after trigger round %d: %w", round, err)
				}
				trig = append(trig, run.Rate)
			} else {
				plain = append(plain, run.Rate)
			}
			res.Runs = append(res.Runs, run)
			prog.Printf("producer %s round %d: %.0f inserts/s (queue backlog at end %d, drained in %.2fs)",
				table, round, run.Rate, run.BacklogAtEnd, run.DrainSeconds)
		}
	}
	res.PlainMedian, res.TriggerMedian = stats.Median(plain), stats.Median(trig)
	if res.PlainMedian > 0 {
		res.Ratio = res.TriggerMedian / res.PlainMedian
	}
	res.TargetMet = res.Ratio >= res.TargetRatio
	return res, nil
}

// produce runs cfg.Producers goroutines inserting one row per autocommit
// statement into table until cfg.ProducerDuration has passed.
func produce(ctx context.Context, cfg config, pool *pgxpool.Pool, prog *progress, table string, round int) (ProducerRun, error) {
	stmt := insertPlain
	if table == "trigger" {
		stmt = insertTrigger
	}
	var n atomic.Int64
	stop := prog.Every(2*time.Second, func() string {
		return fmt.Sprintf("producer %s round %d: %d inserts", table, round, n.Load())
	})
	defer stop()
	start := time.Now()
	deadline := start.Add(cfg.ProducerDuration)
	err := runGroup(ctx, cfg.Producers, func(gctx context.Context, _ int) error {
		for i := 0; time.Now().Before(deadline); i++ {
			if _, err := pool.Exec(gctx, stmt, "bench-producer", i); err != nil {
				return fmt.Errorf("insert into %s: %w", table, err)
			}
			n.Add(1)
		}
		return nil
	})
	elapsed := time.Since(start) // includes the inserts in flight at the deadline
	run := ProducerRun{Table: table, Round: round, Inserts: n.Load(), Seconds: elapsed.Seconds()}
	run.Rate = float64(run.Inserts) / elapsed.Seconds()
	return run, err
}
