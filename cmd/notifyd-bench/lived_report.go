package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// writeLived prints the lived phase: how the table was seeded, each
// operation's p50/p99 at every size with the ratio of the largest size to
// the first, the targets, and the buffers the sparse user's statements
// touched.
func (r *Report) writeLived(w io.Writer, l *LivedResult) {
	if len(l.Sizes) == 0 {
		return
	}
	first, last := l.Sizes[0], l.Sizes[len(l.Sizes)-1]
	fmt.Fprintf(w, "\n8. Long-lived table: one user's reads as notify.notifications grows (background: %s users, %d roles; 70%% of rows to one user, 30%% to one or two roles; %d broadcasts per size)\n",
		num(float64(l.Users)), l.Roles, livedBroadcastsPerSize)
	fmt.Fprintf(w, "   seeding: INSERT ... SELECT FROM generate_series, %s rows per transaction, triggers off, then VACUUM (ANALYZE); %.0f s in all\n",
		num(livedChunk), l.SeedSeconds)
	tw := table(w)
	fmt.Fprintln(tw, "   rows\tadded\tinserts\trows/s\tvacuum\tnotifications\tqueue_items\tnotification_roles")
	for _, s := range l.Sizes {
		fmt.Fprintf(tw, "   %s\t%s\t%.1f s\t%s\t%.1f s\t%.0f MiB\t%.0f MiB\t%.0f MiB\n", num(float64(s.Rows)), num(float64(s.Seed.Added)),
			s.Seed.InsertSeconds, num(s.Seed.RowsPerSecond), s.Seed.VacuumSeconds,
			mib(s.Seed.NotificationsBytes), mib(s.Seed.QueueItemsBytes), mib(s.Seed.RolesBytes))
	}
	tw.Flush()
	fmt.Fprintf(w, "   users of each size N: sparse-N, %d notifications (direct, by a role only it holds, broadcasts) spread over seqs 1..N;\n", livedSparseTotal)
	fmt.Fprintf(w, "   dense-N, %s (direct, by its two roles, broadcasts), read up to the middle, %d read marks, resuming from %d behind\n",
		num(float64(last.Dense.Notifications)), last.Dense.ReadMarks, livedResumeBehind)

	fmt.Fprintf(w, "   p50 / p99 in ms over %d repetitions per size, operations interleaved; ratio: the figure at %s rows over the one at %s rows\n",
		l.Reps, num(float64(last.Rows)), num(float64(first.Rows)))
	tw = table(w)
	head := []string{"   operation"}
	for _, s := range l.Sizes {
		head = append(head, num(float64(s.Rows))+" rows")
	}
	fmt.Fprintln(tw, strings.Join(append(head, "ratio p50", "ratio p99"), "\t"))
	for _, op := range livedOpKeys {
		cells := []string{"   " + op.Label}
		for _, s := range l.Sizes {
			cells = append(cells, fmt.Sprintf("%.2f / %.2f", s.Ops[op.Key].P50Ms, s.Ops[op.Key].P99Ms))
		}
		cells = append(cells, fmt.Sprintf("%.2f×", ratio(last.Ops[op.Key].P50Ms, first.Ops[op.Key].P50Ms)),
			fmt.Sprintf("%.2f×", ratio(last.Ops[op.Key].P99Ms, first.Ops[op.Key].P99Ms)))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()

	fmt.Fprintf(w, "   targets at %s rows: p99 within its limit and within %.1f× of its p99 at %s rows:\n",
		num(float64(last.Rows)), livedMaxRatio, num(float64(first.Rows)))
	for _, t := range l.Targets {
		fmt.Fprintf(w, "     %-34s p99 %.2f ms (limit %.0f ms), %.2f× (limit %.1f×): %s\n",
			livedLabel(t.Op), t.P99Ms, t.LimitMs, t.Ratio, t.MaxRatio, verdict(t.Met))
	}

	fmt.Fprintln(w, "   EXPLAIN (ANALYZE, BUFFERS) of the sparse user's statements: shared buffers hit+read at the root, execution+planning time;")
	fmt.Fprintln(w, "   custom plan (what each node connection runs for a statement's first 5 executions) / the plan the plan cache runs after them:")
	tw = table(w)
	fmt.Fprintln(tw, "   rows\treplay from 0\tunread count\thistory page")
	for _, s := range l.Sizes {
		cells := []string{"   " + num(float64(s.Rows))}
		for _, st := range []string{"replay", "unread", "history"} {
			cells = append(cells, planCell(s.Explains["sparse "+st]))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	if l.ExplainFile != "" {
		fmt.Fprintf(w, "   every plan (sparse and dense, every size): %s\n", l.ExplainFile)
	}
}

func livedLabel(key string) string {
	for _, op := range livedOpKeys {
		if op.Key == key {
			return op.Label
		}
	}
	return key
}

// planCell is "custom / auto" buffers and times, auto marked when generic.
func planCell(ps []LivedPlan) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%d+%d, %.2f+%.2f ms", p.SharedHit, p.SharedRead, p.ExecMs, p.PlanMs)
		if p.JITMs > 0 {
			parts[i] += fmt.Sprintf(" (JIT %.1f ms)", p.JITMs)
		}
		if p.Generic {
			parts[i] += " (generic)"
		}
	}
	return strings.Join(parts, " / ")
}

// writeLivedPlans writes every plan of the run to a new file in the
// temporary directory and returns its path.
func writeLivedPlans(l *LivedResult) (string, error) {
	f, err := os.CreateTemp("", "notifyd-bench-lived-*.txt")
	if err != nil {
		return "", fmt.Errorf("explain file: %w", err)
	}
	defer f.Close()
	for _, s := range l.Sizes {
		for _, key := range []string{"sparse replay", "sparse unread", "sparse history", "dense replay", "dense unread", "dense history"} {
			for _, p := range s.Explains[key] {
				fmt.Fprintf(f, "==== %s rows: %s, %s plan (generic: %v)\n%s\n\n", num(float64(s.Rows)), key, p.Mode, p.Generic, p.Text)
			}
		}
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("explain file: %w", err)
	}
	return f.Name(), nil
}
