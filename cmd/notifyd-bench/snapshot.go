package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/testkit/stats"
)

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
func runSnapshot(ctx context.Context, cfg config, e *env, prog *progress) (*SnapshotResult, error) {
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
	sent, rc, _, err := pacedRun(ctx, e, prog, "held snapshot", "bench-snapshot", rate, total)
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
