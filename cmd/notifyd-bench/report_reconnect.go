package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// writeStorm prints the storm phase against its targets.
func writeStorm(w io.Writer, s *StormResult) {
	fmt.Fprintf(w, "\n9. Reconnect storm on a lived-in table: %s published notifications seeded; %d nodes, %s streams on %s and %s on each other node (%d client processes)\n",
		num(float64(s.Rows)), s.Nodes, num(float64(s.VictimStreams)), s.Killed, num(float64(s.SurvivorStreams)), s.Clients)
	fmt.Fprintf(w, "   load: %.0f notifications/s (%.0f%% over HTTP), each to one of %d roles in turn: every stream gets one every %.1f s; achieved %s/s, %s deliveries\n",
		s.Rate, 100*s.HTTPShare, s.Roles, float64(s.Roles)/s.Rate, num(s.AchievedRate), num(float64(s.Deliveries)))
	fmt.Fprintf(w, "   %s SIGKILLed at %.1f s holding %d streams; clients reconnect as the browser client does (full-jitter backoff from %d ms; a closing status's reconnectAfter), with Last-Event-ID, to a survivor\n",
		s.Killed, s.KilledAtSeconds, s.StreamsOnKilled, s.Browser.InitialMs)
	tw := table(w)
	fmt.Fprintln(tw, "   \tp50\tp90\tp99\tp99.9\tmax\tsamples\ttarget")
	summaryRow(tw, "re-homed: kill -> first notification committed after it", s.Rehomed, fmt.Sprintf("all <= %.0f ms: %s (%.1f%% within, %d got none)",
		s.TargetRehomeMs, verdict(s.RehomeMet), 100*s.RehomedWithinShare, s.RehomedWithout))
	summaryRow(tw, "re-homed: kill -> new connection answered 200", s.Answered, "")
	summaryRow(tw, "re-homed: kill -> its connected message (turn at the database done)", s.Reopened, "")
	summaryRow(tw, fmt.Sprintf("survivors' streams, commit -> receipt, storm (%.0f s after the kill)", s.WindowSeconds), s.Survivors,
		fmt.Sprintf("p99 <= %.0f ms: %s", s.TargetSurvivorP99Ms, verdict(s.SurvivorsMet)))
	summaryRow(tw, fmt.Sprintf("survivors' streams, commit -> receipt, %.0f s before the kill", s.WindowSeconds), s.SurvivorsBefore, "")
	summaryRow(tw, "worker: created -> published, storm", s.WorkerLag, "")
	summaryRow(tw, "worker: created -> published, before", s.WorkerLagBefore, "")
	summaryRow(tw, "feed: published -> survivor receipt, storm", s.FeedLag, "")
	summaryRow(tw, "feed: published -> survivor receipt, before", s.FeedLagBefore, "")
	tw.Flush()
	fmt.Fprintf(w, "   published per second, %.0f s before the kill to %.0f s after: %s\n", s.WindowSeconds, s.WindowSeconds, joinInts(s.PublishedPerSecond))
	var tl []string
	for i, t := range s.Timeline {
		if i%4 == 3 || i == len(s.Timeline)-1 {
			tl = append(tl, fmt.Sprintf("%.0fs %s", t.Seconds, num(float64(t.OpenOnSurvivors))))
		}
	}
	fmt.Fprintf(w, "   streams open on the survivors after the kill: %s\n", strings.Join(tl, ", "))
	fmt.Fprintf(w, "   connections: %d lost, %d failed connects (a reader's try at the killed node included), %d client backoffs, close reasons %v; machine load average %.1f at the start, %.1f at the end\n",
		s.Drops, s.ConnectErrors, s.Backoffs, s.CloseReasons, s.LoadStart, s.LoadEnd)
	for _, name := range slices.Sorted(maps.Keys(s.Explains)) {
		fmt.Fprintf(w, "   %s after the kill, buffers hit+read and execution+planning (custom / cached plan): %s\n", name, planCell(s.Explains[name]))
	}
	fmt.Fprintf(w, "   exactly-once: %s\n", checkLine(s.Check))
	writeCPU(w, s.CPU)
}

// writeRolling prints the rolling restart against its target.
func writeRolling(w io.Writer, r *RollingResult) {
	fmt.Fprintf(w, "\n10. Rolling restart: %d nodes, %s streams of %s users (%d client processes), %s rows seeded; %.0f notifications/s (%.0f%% over HTTP), %s/s achieved, %s deliveries\n",
		r.Nodes, num(float64(r.Streams)), num(float64(r.Users)), r.Clients, num(float64(r.Rows)), r.Rate, 100*r.HTTPShare, num(r.AchievedRate), num(float64(r.Deliveries)))
	fmt.Fprintf(w, "   each node in turn: out of rotation, SIGTERM, started again on its address once exited, back in rotation at /readyz 200, next after %.0f s\n", r.PauseSeconds)
	for _, rs := range r.Restarts {
		fmt.Fprintf(w, "   %s: SIGTERM at %.1f s holding %d streams, exited after %.2f s, ready again after %.2f s\n",
			rs.Node, rs.StopAtSeconds, rs.Streams, rs.ExitedSeconds, rs.ReadySeconds)
	}
	fmt.Fprintf(w, "   clients: %d waits for a closing status's reconnectAfter (longest %d ms), %d backoffs after lost connections or failed connects; close reasons %v\n",
		r.Spread, r.SpreadMaxMs, r.Backoffs, r.CloseReasons)
	tw := table(w)
	fmt.Fprintln(tw, "   commit -> receipt\tp50\tp90\tp99\tp99.9\tmax\tsamples\ttarget")
	summaryRow(tw, "every delivery of the run", r.Latency, fmt.Sprintf("p99 <= %.0f ms: %s", r.TargetP99Ms, verdict(r.TargetMet)))
	summaryRow(tw, "committed during a restart (SIGTERM to ready + 3 s)", r.DuringRestarts, "")
	summaryRow(tw, "committed between restarts", r.BetweenRestarts, "")
	tw.Flush()
	fmt.Fprintf(w, "   connections: %d lost, %d failed connects; machine load average %.1f at the start, %.1f at the end\n",
		r.Drops, r.ConnectErrors, r.LoadStart, r.LoadEnd)
	fmt.Fprintf(w, "   exactly-once: %s\n", checkLine(r.Check))
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = itoa(x)
	}
	return strings.Join(parts, " ")
}
