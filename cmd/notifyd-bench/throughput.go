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
func runThroughput(ctx context.Context, e *env) (*ThroughputResult, error) {
	cfg, prog := e.cfg, e.prog
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
func runLatency(ctx context.Context, e *env, rate int) (*LatencyResult, error) {
	cfg, prog := e.cfg, e.prog
	user := fmt.Sprintf("bench-latency-%d", rate)
	total := max(1, int(float64(rate)*cfg.LatencyDuration.Seconds()))
	prog.Printf("latency: %d/s for %s (%d inserts, %d producers)", rate, cfg.LatencyDuration, total, cfg.LatencyProducers)
	sent, rc, rd, err := pacedRun(ctx, e, "latency "+fmt.Sprint(rate)+"/s", user, rate, total)
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
func pacedRun(ctx context.Context, e *env, what, user string, rate, total int) ([]committed, receipts, *reader, error) {
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
	stop := e.prog.Every(10*time.Second, func() string {
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

// SnapshotResult is the held-snapshot phase: single-row inserts at a steady
// rate while another session holds one snapshot the whole time (what a
// forgotten psql session, a long report or pg_dump does), so vacuum can
// remove nothing the pipeline leaves behind. The figures are per window of
// the run: if a cost on the path grows with dead tuples, the last window's
// latency shows it.
type SnapshotResult struct {
	Rate         int              `json:"rate"`
	Seconds      float64          `json:"seconds"`
	Sent         int              `json:"sent"`
	Missing      int              `json:"missing"`
	AchievedRate float64          `json:"achieved_rate"`
	Windows      []SnapshotWindow `json:"windows"`
	HeldSeconds  float64          `json:"held_seconds"` // the snapshot's age at the end
	LastStages   []Stage          `json:"last_stages"`  // the last window's latency split at published_at
	FirstP99Ms   float64          `json:"first_p99_ms"`
	LastP99Ms    float64          `json:"last_p99_ms"`
	Ratio        float64          `json:"ratio"` // last window's p99 / first's
	TargetP99Ms  float64          `json:"target_p99_ms"`
	TargetRatio  float64          `json:"target_ratio"`
	TargetMet    bool             `json:"target_met"`
}

// SnapshotWindow is one window of the run, by commit time. DeadTuples is
// notify's n_dead_tup at its end: what vacuum could not remove.
type SnapshotWindow struct {
	StartSec   float64       `json:"start_sec"`
	Count      int           `json:"count"`
	Latency    stats.Summary `json:"latency"`
	DeadTuples int64         `json:"dead_tuples"`
}

// runSnapshot is the held-snapshot phase (issue 12's targets: the last
// window's p99 at most 1.5 times the first's and at most 25 ms).
func runSnapshot(ctx context.Context, e *env) (*SnapshotResult, error) {
	cfg, prog := e.cfg, e.prog
	rate, window := cfg.SnapshotRate, cfg.SnapshotWindow
	total := max(1, int(float64(rate)*cfg.SnapshotDuration.Seconds()))
	prog.Printf("held snapshot: %d/s for %s (%d inserts) while another session holds a REPEATABLE READ snapshot", rate, cfg.SnapshotDuration, total)
	holder, err := pgx.Connect(ctx, e.db.URL)
	if err != nil {
		return nil, fmt.Errorf("connect the snapshot holder: %w", err)
	}
	defer holder.Close(context.WithoutCancel(ctx))
	var rows int64
	if _, err = holder.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ`); err == nil {
		err = holder.QueryRow(ctx, `SELECT count(*) FROM notify.notifications`).Scan(&rows)
	}
	if err != nil {
		return nil, fmt.Errorf("hold a snapshot: %w", err)
	}
	heldAt := time.Now()
	var dead []int64 // at the end of each window, and at the end
	sampleDead := func() string {
		var n int64
		_ = e.admin.QueryRow(ctx, `SELECT COALESCE(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE schemaname = 'notify'`).Scan(&n)
		dead = append(dead, n)
		return fmt.Sprintf("held snapshot: held %s, %d dead tuples in notify", time.Since(heldAt).Round(time.Second), n)
	}
	stopDead := prog.Every(window, sampleDead)
	begin := time.Now()
	sent, rc, _, err := pacedRun(ctx, e, "held snapshot", "bench-snapshot", rate, total)
	stopDead()
	sampleDead()
	if rc.read == nil {
		return nil, err
	}
	all := summarizeLatency(rate, sent, rc)
	res := &SnapshotResult{Rate: rate, Seconds: all.Seconds, Sent: all.Sent, Missing: all.Missing, AchievedRate: all.AchievedRate,
		TargetP99Ms: 25, TargetRatio: 1.5, HeldSeconds: time.Since(heldAt).Seconds()}
	var buckets [][]time.Duration
	var lastSent [][]committed
	for _, c := range sent {
		i := int(c.At.Sub(begin) / window)
		for len(buckets) <= i {
			buckets, lastSent = append(buckets, nil), append(lastSent, nil)
		}
		lastSent[i] = append(lastSent[i], c)
		if at, ok := rc.read[c.ID]; ok {
			buckets[i] = append(buckets[i], at.Sub(c.At.Round(0)))
		}
	}
	// A last window shorter than half a window says little: fold it in.
	if n := len(buckets); n > 1 && sent[len(sent)-1].At.Sub(begin)-time.Duration(n-1)*window < window/2 {
		buckets[n-2], lastSent[n-2] = append(buckets[n-2], buckets[n-1]...), append(lastSent[n-2], lastSent[n-1]...)
		buckets, lastSent = buckets[:n-1], lastSent[:n-1]
	}
	for i, b := range buckets {
		w := SnapshotWindow{StartSec: (time.Duration(i) * window).Seconds(), Count: len(b), Latency: stats.Summarize(b)}
		if len(dead) > 0 {
			w.DeadTuples = dead[min(i, len(dead)-1)]
		}
		res.Windows = append(res.Windows, w)
	}
	if n := len(res.Windows); n > 0 {
		res.LastStages = rc.stages(lastSent[n-1])
		res.FirstP99Ms, res.LastP99Ms = res.Windows[0].Latency.P99Ms, res.Windows[n-1].Latency.P99Ms
		res.Ratio = ratio(res.LastP99Ms, res.FirstP99Ms)
		res.TargetMet = res.Missing == 0 && n > 1 && res.LastP99Ms <= res.TargetP99Ms && res.Ratio <= res.TargetRatio
	}
	if _, cerr := holder.Exec(ctx, `COMMIT`); cerr != nil && err == nil {
		err = fmt.Errorf("end the held snapshot: %w", cerr)
	}
	prog.Printf("held snapshot: first window p99 %.1f ms, last %.1f ms (x%.2f), %d missing", res.FirstP99Ms, res.LastP99Ms, res.Ratio, res.Missing)
	return res, err
}

func (s *SnapshotResult) write(w io.Writer, _ *Report) {
	fmt.Fprintf(w, "\n4. Held snapshot: single-row autocommit INSERTs at %d/s for %.0f s while another session holds one REPEATABLE READ snapshot (held %.0f s)\n",
		s.Rate, s.Seconds, s.HeldSeconds)
	writeTable(w, "window\tcount\tp50\tp90\tp99\tmax\tdead tuples in notify at its end", rowsOf(s.Windows, func(_ int, win SnapshotWindow) string {
		return fmt.Sprintf("%.0f s\t%d\t%s\t%s", win.StartSec, win.Count, latencyCells(win.Latency), num(float64(win.DeadTuples)))
	})...)
	fmt.Fprintln(w, "   the last window, split at notifications.published_at (the publish transaction's start):")
	for _, st := range s.LastStages {
		fmt.Fprintf(w, "     %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", st.Name, st.Latency.P50Ms, st.Latency.P99Ms, st.Latency.MaxMs)
	}
	fmt.Fprintf(w, "   achieved %.1f/s, %d sent, %d missing; last window p99 %.1f ms = %.2f x the first's (target <= %.1f x and <= %.0f ms: %s)\n",
		s.AchievedRate, s.Sent, s.Missing, s.LastP99Ms, s.Ratio, s.TargetRatio, s.TargetP99Ms, verdict(s.TargetMet))
}
