package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// bulkInsert inserts $1 rows in one statement, half the batches for the
// stream's user and half for everyone ($2 NULL), as an application
// publishing in bulk would. RETURNING id lets the bench check that exactly
// the inserted notifications arrive.
const bulkInsert = `INSERT INTO notify.notifications (message, target_user_id, data)
	SELECT 'bench throughput ' || g, $2, jsonb_build_object('batch', $3::int, 'i', g)
	FROM generate_series(1, $1::int) AS g
	RETURNING id`

// ThroughputResult is phase 1: bulk inserts to one open stream.
type ThroughputResult struct {
	Notifications int      `json:"notifications"`
	Statements    int      `json:"statements"`
	InsertSeconds float64  `json:"insert_seconds"` // first insert to last commit
	InsertRate    float64  `json:"insert_rate"`    // rows/s committed
	EndToEndSecs  float64  `json:"end_to_end_seconds"`
	Rate          float64  `json:"rate"` // notifications/s, first insert to last receipt
	Received      int      `json:"received"`
	Duplicates    int      `json:"duplicates"`
	Missing       int      `json:"missing"`
	Unexpected    int      `json:"unexpected"`
	OutOfOrder    int      `json:"out_of_order"`
	Reconnects    int64    `json:"reconnects"`
	CloseReasons  []string `json:"close_reasons,omitempty"`
	Verified      bool     `json:"verified"` // all received exactly once, seq increasing
	TargetRate    float64  `json:"target_rate"`
	TargetMet     bool     `json:"target_met"`
}

// runThroughput inserts cfg.Total notifications in statements of cfg.Batch
// rows from cfg.ThroughputProducers goroutines while one stream reads them.
// Producers hold back while more than cfg.Window notifications are in
// flight, so the figure is what the pipeline sustains, not how fast a
// backlog can be piled up in the table.
func runThroughput(ctx context.Context, cfg config, e *env, prog *progress) (*ThroughputResult, error) {
	const user = "bench-throughput"
	prog.Printf("throughput: %d notifications, %d-row statements, %d producers, window %d",
		cfg.Total, cfg.Batch, cfg.ThroughputProducers, cfg.Window)
	pool, rd, closeAll, err := producersAndReader(ctx, e, user, cfg.ThroughputProducers)
	if err != nil {
		return nil, err
	}
	defer closeAll()

	batches := (cfg.Total + cfg.Batch - 1) / cfg.Batch
	ids := make([][]string, batches) // each batch's slot is written by one goroutine
	// reserved counts rows from the moment a producer decides to insert
	// them, so statements in flight count against the window too.
	var next, reserved, inserted atomic.Int64
	stop := prog.Every(2*time.Second, func() string {
		return fmt.Sprintf("throughput: %d inserted, %d received", inserted.Load(), rd.Count())
	})
	start := time.Now()
	err = runGroup(ctx, cfg.ThroughputProducers, func(gctx context.Context, _ int) error {
		for b := int(next.Add(1) - 1); b < batches; b = int(next.Add(1) - 1) {
			n := min(cfg.Batch, cfg.Total-b*cfg.Batch)
			for reserved.Add(int64(n))-rd.Count() > int64(cfg.Window) {
				reserved.Add(-int64(n))
				if err := sleepCtx(gctx, 500*time.Microsecond); err != nil {
					return err
				}
			}
			var target any // NULL: everyone
			if b%2 == 0 {
				target = user
			}
			got, err := insertBatch(gctx, pool, n, target, b)
			if err != nil {
				return err
			}
			ids[b] = got
			inserted.Add(int64(len(got)))
		}
		return nil
	})
	insertEnd := time.Now()
	if err == nil {
		err = rd.WaitFor(ctx, int64(cfg.Total), cfg.Timeout, 30*time.Second)
	}
	stop()
	res := verifyThroughput(cfg, ids, rd.Deliveries(), start, insertEnd)
	res.Reconnects, res.CloseReasons = rd.Reconnects(), rd.CloseReasons()
	prog.Printf("throughput: %.0f notifications/s end to end (inserts alone %.0f rows/s), verified=%v, reconnects=%d",
		res.Rate, res.InsertRate, res.Verified, res.Reconnects)
	return res, err
}

// insertBatch inserts one bulk statement and returns the new ids.
func insertBatch(ctx context.Context, pool *pgxpool.Pool, n int, target any, batch int) ([]string, error) {
	rows, err := pool.Query(ctx, bulkInsert, n, target, batch)
	if err != nil {
		return nil, fmt.Errorf("insert batch %d: %w", batch, err)
	}
	defer rows.Close()
	ids := make([]string, 0, n)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("insert batch %d: %w", batch, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert batch %d: %w", batch, err)
	}
	return ids, nil
}
