package main

import (
	"fmt"
	"io"
)

// writeVersus prints notifyd beside Centrifugo (the versus phase).
func (r *Report) writeVersus(w io.Writer) {
	v := r.Versus
	if v == nil {
		return
	}
	built := "given with -centrifugo-bin"
	if v.BuildSeconds > 0 {
		built = fmt.Sprintf("built from the module proxy in %.0f s", v.BuildSeconds)
	}
	fmt.Fprintf(w, "\nVersus Centrifugo %s (%s; memory broker, uni_sse): the same SSE reader in the bench, runs interleaved, medians of %d\n",
		v.CentrifugoVersion, built, v.Rounds)
	fmt.Fprintf(w, "   latency: %d streams, one publisher at %d/s for %.0f s (notifyd: %s;\n"+
		"   Centrifugo: HTTP API publish to the channel every stream subscribed to, clock at the request's start)\n", v.Streams, v.Rate, v.Seconds, versusPublishDoc[v.Publish])
	tw := table(w)
	fmt.Fprintln(tw, "   round\tsystem\tachieved\tp50\tp90\tp99\tmax\tdeliveries\tpublish call p50/p99\tCPU-s server/bench")
	for _, l := range v.Latency {
		fmt.Fprintf(tw, "   %d\t%s\t%.0f/s\t%.2f ms\t%.2f ms\t%.2f ms\t%.1f ms\t%s\t%.2f/%.2f ms\t%.1f/%.1f\n", l.Round, l.System, l.Achieved,
			l.Latency.P50Ms, l.Latency.P90Ms, l.Latency.P99Ms, l.Latency.MaxMs, num(float64(l.Latency.Count)), l.PublishP50, l.PublishP99,
			l.ServerCPU, l.BenchCPU)
	}
	tw.Flush()
	fmt.Fprintf(w, "   saturation: %d streams, %d publishers as fast as they can for %.0f s, at most %d messages not yet on every stream\n",
		v.SatStreams, v.SatPublishers, v.SatSeconds, v.SatWindow)
	tw = table(w)
	fmt.Fprintln(tw, "   round\tsystem\tmessages\tdeliveries/s\tpublishes that waited for the window\tCPU-s server/bench")
	for _, s := range v.Saturation {
		fmt.Fprintf(tw, "   %d\t%s\t%s\t%s\t%.0f%%\t%.1f/%.1f\n", s.Round, s.System, num(float64(s.Messages)), num(s.DeliveriesPerS),
			100*s.WindowWaits, s.ServerCPU, s.BenchCPU)
	}
	tw.Flush()
	tw = table(w)
	fmt.Fprintln(tw, "   median\tnotifyd\tcentrifugo\tnotifyd/centrifugo\ttarget")
	fmt.Fprintf(tw, "   p50\t%.2f ms\t%.2f ms\t%.2f×\t<= %.1f×: %s\n", v.P50Ms["notifyd"], v.P50Ms["centrifugo"], v.P50Ratio,
		targetVersusP50Ratio, verdict(len(v.Latency) > 0 && v.P50Ratio <= targetVersusP50Ratio))
	fmt.Fprintf(tw, "   p99\t%.2f ms\t%.2f ms\t%.2f×\t<= %.1f×: %s\n", v.P99Ms["notifyd"], v.P99Ms["centrifugo"], v.P99Ratio,
		targetVersusP99Ratio, verdict(len(v.Latency) > 0 && v.P99Ratio <= targetVersusP99Ratio))
	fmt.Fprintf(tw, "   deliveries/s at saturation\t%s\t%s\t%.2f×\t>= %.1f×: %s\n", num(v.DeliveriesPerS["notifyd"]), num(v.DeliveriesPerS["centrifugo"]),
		v.SatRatio, targetVersusSatRatio, verdict(v.SatTargetMet))
	tw.Flush()
	for _, m := range v.Memory {
		fmt.Fprintf(w, "   memory, %s: %d streams connected to the fresh process: RSS %.1f KiB a stream, %.1f KiB above its idle %.1f MiB\n",
			m.System, m.Streams, m.PerStreamKiB, m.MarginalKiB, m.IdleMiB)
	}
}

// versusPublishDoc says how notifyd's messages were published and where
// their clock starts, per -versus-publish.
var versusPublishDoc = map[string]string{
	versusInsert: "single-row INSERT to everyone, clock at commit",
	versusSend:   "SELECT notify.send(...) to everyone, born published, clock at the call's start",
	versusHTTP:   "POST /api/notifications to everyone, born published, clock at the request's start",
}
