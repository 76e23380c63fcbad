package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Report is everything a run measured, with the environment and settings
// that produced it. Phases that did not run are nil.
type Report struct {
	Environment Environment       `json:"environment"`
	Settings    Settings          `json:"settings"`
	Throughput  *ThroughputResult `json:"throughput,omitempty"`
	Latency     []LatencyResult   `json:"latency,omitempty"`
	Producer    *ProducerResult   `json:"producer,omitempty"`
	Snapshot    *SnapshotResult   `json:"snapshot,omitempty"`
	Churn       *ChurnResult      `json:"churn,omitempty"`
	Streams     *StreamsResult    `json:"streams,omitempty"`
	Broadcast   *BroadcastResult  `json:"broadcast,omitempty"`
	Resume      *ResumeResult     `json:"resume,omitempty"`
	Cluster     *ClusterResult    `json:"cluster,omitempty"`
	Lived       *LivedResult      `json:"lived,omitempty"`
	Storm       *StormResult      `json:"storm,omitempty"`
	// StormReplica is the storm run without and with a read replica
	// (-storm-replica).
	StormReplica *StormReplicaResult `json:"storm_replica,omitempty"`
	Rolling      *RollingResult      `json:"rolling,omitempty"`
	// Versus is notifyd beside Centrifugo (issue 15's comparison).
	Versus   *VersusResult `json:"versus,omitempty"`
	Profiles []Profile     `json:"profiles"`
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the human summary.
func (r *Report) WriteTable(w io.Writer) {
	e, s := r.Environment, r.Settings
	fmt.Fprintf(w, "\nnotifyd-bench report (%s)\n", e.Time.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine:    %d cores (GOMAXPROCS %d), %s, %s; client, server and PostgreSQL share them\n",
		e.Cores, e.GOMAXPROCS, e.Platform, e.GoVersion)
	fmt.Fprintf(w, "postgresql: %s at %s (%s)\n", e.PostgresVersion, e.ServerURL, settingsLine(e.PostgresConfig))
	if r.Throughput != nil || r.Latency != nil || r.Producer != nil || r.Snapshot != nil {
		fmt.Fprintf(w, "server:     in process, %d queue worker(s), pool %d, default worker/feed settings; database %s\n",
			s.ServerWorkers, s.ServerPool, e.Database)
	}
	if r.Streams != nil || r.Broadcast != nil || r.Resume != nil || r.Cluster != nil || r.Lived != nil || r.Storm != nil || r.Rolling != nil {
		fmt.Fprintln(w, "nodes:      notifyd processes (the built binary), one fresh database per phase, clients in processes of their own")
	}
	if len(s.NodeEnv) > 0 || s.NotifydBin != "" {
		fmt.Fprintf(w, "EXPERIMENT: node settings %s, binary %q (empty: built from this tree)\n", strings.Join(s.NodeEnv, ", "), s.NotifydBin)
	}
	if len(s.DBSettings) > 0 {
		fmt.Fprintf(w, "EXPERIMENT: bench database settings changed from the defaults: %s\n", strings.Join(s.DBSettings, ", "))
	}
	if t := r.Throughput; t != nil {
		fmt.Fprintf(w, "\n1. End-to-end throughput: %s notifications in %d-row INSERT ... SELECT statements, %d producers, at most %s in flight, one stream\n",
			num(float64(s.Total)), s.Batch, s.ThroughputProducers, num(float64(s.Window)))
		tw := table(w)
		fmt.Fprintf(tw, "   end to end (first insert to last receipt)\t%s/s\t%.2f s\ttarget >= %s/s: %s\n",
			num(t.Rate), t.EndToEndSecs, num(t.TargetRate), verdict(t.TargetMet))
		fmt.Fprintf(tw, "   inserts alone (first insert to last commit)\t%s/s\t%.2f s\t\n", num(t.InsertRate), t.InsertSeconds)
		tw.Flush()
		fmt.Fprintf(w, "   verification: %s\n", t.verification())
		r.writeCPUPerNotification(w, t)
	}
	if len(r.Latency) > 0 {
		fmt.Fprintf(w, "\n2. Commit-to-receipt latency: single-row autocommit INSERTs from %d paced producers, %.0f s per rate\n",
			s.LatencyProducers, s.LatencySeconds)
		tw := table(w)
		fmt.Fprintln(tw, "   rate\tachieved\tcount\tmissing\tp50\tp90\tp99\tmax\treconnects\ttarget")
		for _, l := range r.Latency {
			target := "-"
			if l.TargetMet != nil {
				target = fmt.Sprintf("p99 <= %.0f ms: %s", l.TargetP99Ms, verdict(*l.TargetMet))
			}
			fmt.Fprintf(tw, "   %d/s\t%.1f/s\t%d\t%d\t%s\t%d\t%s\n", l.Rate, l.AchievedRate, l.Count, l.Missing, latencyCells(l.Latency), l.Reconnects, target)
		}
		tw.Flush()
		for _, l := range r.Latency {
			fmt.Fprintf(w, "   where the time goes at %d/s (split at notifications.published_at, the publish transaction's start; needs a local PostgreSQL):\n", l.Rate)
			tw := table(w)
			fmt.Fprintln(tw, "     stage\tp50\tp90\tp99\tmax")
			for _, st := range l.Stages {
				fmt.Fprintf(tw, "     %s\t%s\n", st.Name, latencyCells(st.Latency))
			}
			tw.Flush()
		}
	}
	if p := r.Producer; p != nil {
		r.writeProducer(w, p)
	}
	if s := r.Snapshot; s != nil {
		r.writeSnapshot(w, s)
	}
	if c := r.Churn; c != nil {
		r.writeChurn(w, c)
	}
	r.writeNodePhases(w)
	r.writeVersus(w)
	r.writeProfiles(w)
	r.writeLoad(w)
	fmt.Fprintln(w)
}
