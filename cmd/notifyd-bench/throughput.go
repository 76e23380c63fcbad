package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// ThroughputResult is phase 1: bulk inserts to one open stream.
type ThroughputResult struct {
	Notifications int     `json:"notifications"`
	Statements    int     `json:"statements"`
	InsertSeconds float64 `json:"insert_seconds"` // first insert to last commit
	InsertRate    float64 `json:"insert_rate"`    // rows/s committed
	EndToEndSecs  float64 `json:"end_to_end_seconds"`
	Rate          float64 `json:"rate"` // notifications/s, first insert to last receipt
	// Check is the stream's deliveries against the database: every
	// inserted notification once, in order, nothing else (the final
	// broadcast that marks the end included).
	Check        cluster.Check  `json:"check"`
	Reconnects   int            `json:"reconnects"`
	CloseReasons map[string]int `json:"close_reasons,omitempty"`
	Verified     bool           `json:"verified"`
	TargetRate   float64        `json:"target_rate"`
	TargetMet    bool           `json:"target_met"`
}

// runThroughput inserts cfg.Total notifications in statements of cfg.Batch
// rows (INSERT ... SELECT, half the batches for the stream's user and half
// for everyone, as an application publishing in bulk would) from
// cfg.ThroughputProducers goroutines while one stream reads them.
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
	head, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return nil, err
	}
	batches := (cfg.Total + cfg.Batch - 1) / cfg.Batch
	// reserved counts rows from the moment a producer decides to insert
	// them, so statements in flight count against the window too.
	var reserved, inserted atomic.Int64
	stop := prog.Every(2*time.Second, func() string {
		return fmt.Sprintf("throughput: %d inserted, %d received", inserted.Load(), rd.Stats().Received)
	})
	start := time.Now()
	err = slots(ctx, cfg.ThroughputProducers, start, 0, func(b int64, _ time.Time) bool { return b < int64(batches) },
		func(ctx context.Context, _ int, b int64) error {
			n := min(cfg.Batch, cfg.Total-int(b)*cfg.Batch)
			for reserved.Add(int64(n))-int64(rd.Stats().Received) > int64(cfg.Window) {
				reserved.Add(-int64(n))
				if err := sleepCtx(ctx, 500*time.Microsecond); err != nil {
					return err
				}
			}
			var target any // NULL: everyone
			if b%2 == 0 {
				target = user
			}
			rows, _ := pool.Query(ctx, `INSERT INTO notify.notifications (message, target_user_id, data)
				SELECT 'bench throughput ' || g, $2, jsonb_build_object('batch', $3::int, 'i', g)
				FROM generate_series(1, $1::int) AS g RETURNING id`, n, target, b)
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("insert batch %d: %w", b, err)
			}
			inserted.Add(int64(len(ids)))
			return nil
		})
	insertEnd := time.Now()
	var sentinel int64
	if err == nil {
		sentinel, err = rd.drain(ctx, e)
	}
	stop()
	if err != nil {
		return nil, err
	}
	feed, err := cluster.LoadFeed(ctx, e.admin, head)
	if err != nil {
		return nil, err
	}
	seqs, at := rd.Received()
	st := rd.Stats()
	res := &ThroughputResult{Statements: batches, Notifications: int(inserted.Load()), TargetRate: 20_000,
		Check: feed.Check("throughput", notify.Identity{UserID: user}, head, seqs), Reconnects: st.Drops, CloseReasons: st.CloseReasons}
	var end int64 // the receipt of the last notification that completed the set
	for i, seq := range seqs {
		if seq < sentinel {
			end = max(end, at[i])
		}
	}
	res.InsertSeconds = insertEnd.Sub(start).Seconds()
	res.InsertRate = float64(res.Notifications) / res.InsertSeconds
	res.EndToEndSecs = time.Unix(0, end).Sub(start).Seconds()
	res.Rate = float64(res.Notifications) / res.EndToEndSecs
	res.Verified = res.Notifications == cfg.Total && res.Check.OK()
	res.TargetMet = res.Verified && res.Rate >= res.TargetRate
	prog.Printf("throughput: %.0f notifications/s end to end (inserts alone %.0f rows/s), verified=%v, reconnects=%d",
		res.Rate, res.InsertRate, res.Verified, res.Reconnects)
	return res, nil
}

func (t *ThroughputResult) write(w io.Writer, r *Report) {
	c := r.cfg
	fmt.Fprintf(w, "\n1. End-to-end throughput: %s notifications in %d-row INSERT ... SELECT statements, %d producers, at most %s in flight, one stream\n",
		num(float64(c.Total)), c.Batch, c.ThroughputProducers, num(float64(c.Window)))
	writeTable(w, "", fmt.Sprintf("end to end (first insert to last receipt)\t%s/s\t%.2f s\ttarget >= %s/s: %s",
		num(t.Rate), t.EndToEndSecs, num(t.TargetRate), verdict(t.TargetMet)),
		fmt.Sprintf("inserts alone (first insert to last commit)\t%s/s\t%.2f s\t", num(t.InsertRate), t.InsertSeconds))
	reconnects := "no reconnects"
	if t.Reconnects > 0 {
		reconnects = fmt.Sprintf("%d reconnects (server closed the stream: %s)", t.Reconnects, joinMap(t.CloseReasons, " ", ", "))
	}
	fmt.Fprintf(w, "   verification (%s inserted and the final broadcast): %s; %s\n", num(float64(t.Notifications)), checkLine(t.Check), reconnects)
	r.writeCPUPerNotification(w, t)
}

// LatencyResult is phase 2 at one rate: commit-to-receipt latency.
type LatencyResult struct {
	Rate         int           `json:"rate"` // requested, per second
	AchievedRate float64       `json:"achieved_rate"`
	Producers    int           `json:"producers"`
	Seconds      float64       `json:"seconds"`
	Sent         int           `json:"sent"`
	Count        int           `json:"count"` // latencies measured (sent and received)
	Missing      int           `json:"missing"`
	Reconnects   int           `json:"reconnects"`
	Latency      stats.Summary `json:"latency"`
	Stages       []Stage       `json:"stages"`
	TargetP99Ms  float64       `json:"target_p99_ms,omitempty"`
	TargetMet    *bool         `json:"target_met,omitempty"`
}

// runLatency inserts single rows at a steady rate for cfg.LatencyDuration
// and measures, per notification, the time from the producer seeing its
// commit to the stream delivering it.
func runLatency(ctx context.Context, cfg config, e *env, prog *progress, rate int) (*LatencyResult, error) {
	user := fmt.Sprintf("bench-latency-%d", rate)
	total := max(1, int(float64(rate)*cfg.LatencyDuration.Seconds()))
	prog.Printf("latency: %d/s for %s (%d inserts, %d producers)", rate, cfg.LatencyDuration, total, cfg.LatencyProducers)
	sent, rc, rd, err := pacedRun(ctx, e, prog, "latency "+fmt.Sprint(rate)+"/s", user, rate, total)
	if rc.read == nil {
		return nil, err
	}
	res := summarizeLatency(rate, sent, rc)
	res.Producers, res.Reconnects, res.Stages = cfg.LatencyProducers, rd.Stats().Drops, rc.stages(sent)
	prog.Printf("latency %d/s: achieved %.0f/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d missing",
		rate, res.AchievedRate, res.Latency.P50Ms, res.Latency.P99Ms, res.Latency.MaxMs, res.Missing)
	return res, err
}

// pacedRun runs paceInserts for user while user's stream reads, waits
// for the stream to have everything, and reads the receipts. rc.read is
// nil when nothing could be measured; otherwise err is how the run ended.
func pacedRun(ctx context.Context, e *env, prog *progress, what, user string, rate, total int) ([]committed, receipts, *reader, error) {
	pool, rd, closeAll, err := producersAndReader(ctx, e, user, e.cfg.LatencyProducers)
	if err != nil {
		return nil, receipts{}, nil, err
	}
	defer closeAll()
	head, err := cluster.Head(ctx, e.admin)
	if err != nil {
		return nil, receipts{}, nil, err
	}
	var done atomic.Int64
	stop := prog.Every(10*time.Second, func() string {
		return fmt.Sprintf("%s: %d committed, %d received", what, done.Load(), rd.Stats().Received)
	})
	sent, err := paceInserts(ctx, pool, user, rate, total, e.cfg.LatencyProducers, &done)
	if err == nil {
		_, err = rd.drain(ctx, e)
	}
	stop()
	rc, rerr := readReceipts(ctx, e, rd, head)
	if rerr != nil {
		return nil, receipts{}, nil, rerr
	}
	return sent, rc, rd, err
}

// summarizeLatency pairs commits with receipts by notification id.
func summarizeLatency(rate int, sent []committed, rc receipts) *LatencyResult {
	res := &LatencyResult{Rate: rate, Sent: len(sent)}
	lat := make([]time.Duration, 0, len(sent))
	for _, c := range sent {
		if at, ok := rc.read[c.ID]; ok {
			lat = append(lat, at.Sub(c.At.Round(0)))
		} else {
			res.Missing++
		}
	}
	res.Count, res.Latency = len(lat), stats.Summarize(lat)
	if byTime := func(a, b committed) int { return a.At.Compare(b.At) }; len(sent) > 1 {
		if span := slices.MaxFunc(sent, byTime).At.Sub(slices.MinFunc(sent, byTime).At); span > 0 {
			res.Seconds, res.AchievedRate = span.Seconds(), float64(len(sent)-1)/span.Seconds()
		}
	}
	if rate >= 1000 {
		res.TargetP99Ms = 25
		met := res.Missing == 0 && res.Count > 0 && res.Latency.P99Ms <= res.TargetP99Ms
		res.TargetMet = &met
	}
	return res
}

type latencies []LatencyResult

func (ls latencies) write(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n2. Commit-to-receipt latency: single-row autocommit INSERTs from %d paced producers, %.0f s per rate\n",
		r.cfg.LatencyProducers, r.cfg.LatencyDuration.Seconds())
	writeTable(w, "rate\tachieved\tcount\tmissing\tp50\tp90\tp99\tmax\treconnects\ttarget", rowsOf(ls, func(_ int, l LatencyResult) string {
		target := "-"
		if l.TargetMet != nil {
			target = fmt.Sprintf("p99 <= %.0f ms: %s", l.TargetP99Ms, verdict(*l.TargetMet))
		}
		return fmt.Sprintf("%d/s\t%.1f/s\t%d\t%d\t%s\t%d\t%s", l.Rate, l.AchievedRate, l.Count, l.Missing, latencyCells(l.Latency), l.Reconnects, target)
	})...)
	for _, l := range ls {
		fmt.Fprintf(w, "   where the time goes at %d/s (split at notifications.published_at, the publish transaction's start; needs a local PostgreSQL):\n", l.Rate)
		writeTable(w, "  stage\tp50\tp90\tp99\tmax", rowsOf(l.Stages, func(_ int, st Stage) string {
			return fmt.Sprintf("  %s\t%s", st.Name, latencyCells(st.Latency))
		})...)
	}
}
