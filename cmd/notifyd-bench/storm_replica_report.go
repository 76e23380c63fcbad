package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// writeStormReplica prints what the read replica took off the primary in
// each stretch of each storm run.
func writeStormReplica(w io.Writer, s *StormReplicaResult) {
	fmt.Fprintf(w, "\n9b. The storm without and with a read replica: a private primary (pg_stat_statements) seeded with %s rows, a pg_basebackup standby copied in %.1f s; streams first open %s seqs behind the head\n",
		num(float64(s.Rows)), s.StandbySeconds, num(float64(s.Behind)))
	tw := table(w)
	fmt.Fprintln(tw, "   run\tstretch\ts\tprimary CPU s\tprimary calls\tprimary exec ms\tprimary blocks\tstandby CPU s\tstandby calls\tstandby exec ms")
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
			fmt.Fprintf(tw, "   %s\t%s\t%.1f\t%.2f\t%s\t%.0f\t%s\t%.2f\t%s\t%.0f\n", name, p.Stretch, p.Seconds, p.CPUSeconds,
				num(float64(p.Total.Calls)), p.Total.ExecMs, num(float64(p.Total.Blocks)), sb.CPUSeconds, num(float64(sb.Total.Calls)), sb.Total.ExecMs)
		}
	}
	tw.Flush()
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

// rankedLine lists m's entries as "key value", by weight descending (then
// by key), joined by sep; "none" when m is empty.
func rankedLine[V any](m map[string]V, weight func(V) float64, sep string, value func(V) string) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(weight(m[b]), weight(m[a])), strings.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + value(m[k])
	}
	return strings.Join(parts, sep)
}
