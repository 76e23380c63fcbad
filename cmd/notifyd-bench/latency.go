package main

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// singleInsert is one notification per autocommit statement, the way most
// applications publish; RETURNING id keys the commit time.
const singleInsert = `INSERT INTO notify.notifications (message, target_user_id, data)
	VALUES ('bench latency', $1, jsonb_build_object('i', $2::int))
	RETURNING id`

// LatencyResult is phase 2 at one rate: commit-to-receipt latency.
type LatencyResult struct {
	Rate         int           `json:"rate"` // requested, per second
	AchievedRate float64       `json:"achieved_rate"`
	Producers    int           `json:"producers"`
	Seconds      float64       `json:"seconds"`
	Sent         int           `json:"sent"`
	Count        int           `json:"count"` // latencies measured (sent and received)
	Missing      int           `json:"missing"`
	Reconnects   int64         `json:"reconnects"`
	Latency      stats.Summary `json:"latency"`
	Stages       []Stage       `json:"stages"`
	TargetP99Ms  float64       `json:"target_p99_ms,omitempty"`
	TargetMet    *bool         `json:"target_met,omitempty"`
}

// committed is one insert: its id and the time right after its commit
// returned to the producer.
type committed struct {
	ID string
	At time.Time
}

// runLatency inserts single rows at a steady rate for cfg.LatencyDuration
// (paceInserts) and measures, per notification, the time from the producer
// seeing its commit to the stream delivering it.
func runLatency(ctx context.Context, cfg config, e *env, prog *progress, rate int) (*LatencyResult, error) {
	user := fmt.Sprintf("bench-latency-%d", rate)
	total := max(1, int(float64(rate)*cfg.LatencyDuration.Seconds()))
	prog.Printf("latency: %d/s for %s (%d inserts, %d producers)", rate, cfg.LatencyDuration, total, cfg.LatencyProducers)
	pool, rd, closeAll, err := producersAndReader(ctx, e, user, cfg.LatencyProducers)
	if err != nil {
		return nil, err
	}
	defer closeAll()

	var done atomic.Int64
	stop := prog.Every(2*time.Second, func() string {
		return fmt.Sprintf("latency %d/s: %d committed, %d received", rate, done.Load(), rd.Count())
	})
	all, err := paceInserts(ctx, pool, user, rate, total, cfg.LatencyProducers, &done)
	if err == nil {
		err = rd.WaitFor(ctx, done.Load(), cfg.Timeout, 10*time.Second)
	}
	stop()
	ds := rd.Deliveries()
	res := summarizeLatency(rate, cfg.LatencyProducers, all, ds)
	res.Reconnects = rd.Reconnects()
	if stages, serr := latencyStages(ctx, e, user, all, ds); serr == nil {
		res.Stages = stages
	} else if err == nil {
		err = serr
	}
	prog.Printf("latency %d/s: achieved %.0f/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d missing",
		rate, res.AchievedRate, res.Latency.P50Ms, res.Latency.P99Ms, res.Latency.MaxMs, res.Missing)
	return res, err
}

// producersAndReader opens a pool of n producer connections and a stream
// for user, the two ends every in-process phase measures between; closeAll
// closes both.
func producersAndReader(ctx context.Context, e *env, user string, n int) (*pgxpool.Pool, *reader, func(), error) {
	pool, err := newPool(ctx, e.db.URL, n, producerApp)
	if err != nil {
		return nil, nil, nil, err
	}
	rd, err := openReader(ctx, e, user)
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	return pool, rd, func() { rd.Close(); pool.Close() }, nil
}

// paceInserts runs total single-row inserts for user at rate per second
// from producers goroutines and returns each one's commit time. The k-th
// insert is due at start + k/rate whichever producer takes it, so a slow
// insert delays only itself; several producers let the rate hold when one
// insert stalls. done counts the commits as they happen.
func paceInserts(ctx context.Context, pool *pgxpool.Pool, user string, rate, total, producers int, done *atomic.Int64) ([]committed, error) {
	interval := time.Second / time.Duration(rate)
	sent := make([][]committed, producers)
	var next atomic.Int64
	start := time.Now().Add(20 * time.Millisecond)
	err := runGroup(ctx, producers, func(gctx context.Context, p int) error {
		for k := next.Add(1) - 1; k < int64(total); k = next.Add(1) - 1 {
			if err := sleepUntil(gctx, start.Add(time.Duration(k)*interval)); err != nil {
				return err
			}
			var id string
			if err := pool.QueryRow(gctx, singleInsert, user, k).Scan(&id); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			sent[p] = append(sent[p], committed{ID: id, At: time.Now()})
			done.Add(1)
		}
		return nil
	})
	return slices.Concat(sent...), err
}

// firstReceipts is when each notification was first delivered, by id.
func firstReceipts(ds []delivery) map[string]time.Time {
	received := make(map[string]time.Time, len(ds))
	for _, d := range ds {
		if _, dup := received[d.ID]; !dup {
			received[d.ID] = d.At
		}
	}
	return received
}

// summarizeLatency pairs commits with deliveries by notification id.
func summarizeLatency(rate, producers int, sent []committed, ds []delivery) *LatencyResult {
	res := &LatencyResult{Rate: rate, Producers: producers, Sent: len(sent)}
	received := firstReceipts(ds)
	lat := make([]time.Duration, 0, len(sent))
	var first, last time.Time
	for _, c := range sent {
		if first.IsZero() || c.At.Before(first) {
			first = c.At
		}
		if c.At.After(last) {
			last = c.At
		}
		if at, ok := received[c.ID]; ok {
			lat = append(lat, at.Sub(c.At))
		} else {
			res.Missing++
		}
	}
	res.Count = len(lat)
	res.Latency = stats.Summarize(lat)
	if span := last.Sub(first); len(sent) > 1 && span > 0 {
		res.Seconds = span.Seconds()
		res.AchievedRate = float64(len(sent)-1) / span.Seconds()
	}
	if rate >= 1000 {
		res.TargetP99Ms = 25
		met := res.Missing == 0 && res.Count > 0 && res.Latency.P99Ms <= res.TargetP99Ms
		res.TargetMet = &met
	}
	return res
}
