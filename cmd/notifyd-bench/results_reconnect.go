package main

import (
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// ReconnectRun is what the storm and the rolling restart report alike.
type ReconnectRun struct {
	Nodes       int     `json:"nodes"`
	Streams     int     `json:"streams"`
	Opened      int     `json:"opened"`
	OpenSeconds float64 `json:"open_seconds"`
	Clients     int     `json:"client_processes"`
	// Rows seeded before the nodes started, and how.
	Rows         int64         `json:"rows"`
	Seed         *LivedSeed    `json:"seed,omitempty"`
	Rate         float64       `json:"rate"`
	HTTPShare    float64       `json:"http_share"`
	Browser      fleet.Browser `json:"client_reconnect"`
	Sent         int64         `json:"sent"`
	AchievedRate float64       `json:"achieved_rate"`
	Deliveries   int           `json:"deliveries"`
	Seconds      float64       `json:"seconds"`
	DrainSeconds float64       `json:"drain_seconds"`
	LoadStart    float64       `json:"loadavg1_start"`
	LoadEnd      float64       `json:"loadavg1_end"`
	StreamTally
}

// StormResult is the storm phase: a node holding most streams killed on a
// lived-in table, its clients re-homed on the survivors.
type StormResult struct {
	ReconnectRun
	VictimStreams   int `json:"victim_streams"`
	SurvivorStreams int `json:"survivor_streams"` // on each survivor
	// Load: Rate notifications a second, each to one of Roles roles in
	// turn (each stream gets Rate/Roles a second).
	Roles int `json:"roles"`
	// Behind: the streams first opened this many seqs before the head
	// (-storm-behind), so each opening replayed from the table.
	Behind int64 `json:"behind,omitempty"`
	// Timing of the run.
	BeforeSeconds   float64 `json:"before_kill_seconds"`
	AfterSeconds    float64 `json:"after_kill_seconds"`
	WindowSeconds   float64 `json:"storm_window_seconds"`
	Killed          string  `json:"killed"`
	KilledAtSeconds float64 `json:"killed_at_seconds"`
	StreamsOnKilled int     `json:"streams_on_killed"`
	// Rehomed is, over the killed node's streams, the time from the kill to
	// the receipt of the stream's first notification committed after the
	// kill; RehomedWithout counts streams that got none before the end.
	// Answered is the time from the kill to the new connection's 200 (after
	// the client's backoff; a stream answers before its turn at the
	// database), Reopened to its connected message (after its turn).
	// Backoffs counts the clients' jittered waits (lost connections and
	// failed connects).
	Rehomed            stats.Summary `json:"rehomed_first_new"`
	RehomedWithout     int           `json:"rehomed_without_new"`
	RehomedWithinShare float64       `json:"rehomed_within_target_share"`
	Answered           stats.Summary `json:"rehomed_answered"`
	Reopened           stats.Summary `json:"rehomed_connected"`
	Backoffs           int           `json:"backoffs"`
	// The survivors' streams: commit → receipt of notifications committed
	// in the storm window, and in as long a stretch before the kill.
	Survivors       stats.Summary `json:"survivors_storm"`
	SurvivorsBefore stats.Summary `json:"survivors_before"`
	// WorkerLag is created_at → published_at (the queue: wake-up, claim,
	// publish start), FeedLag published_at → receipt on the survivors'
	// streams (publish and commit, NOTIFY, the feed's read, the hub, the
	// write), for notifications committed in the storm window and before.
	WorkerLag       stats.Summary `json:"worker_lag_storm"`
	WorkerLagBefore stats.Summary `json:"worker_lag_before"`
	FeedLag         stats.Summary `json:"feed_lag_storm"`
	FeedLagBefore   stats.Summary `json:"feed_lag_before"`
	// PublishedPerSecond counts notifications published in each second from
	// one window before the kill to one window after it.
	PublishedPerSecond []int         `json:"published_per_second"`
	Timeline           []StormSample `json:"timeline"`
	HeadAtKill         int64         `json:"head_at_kill"`
	// Explains: a re-homed user's statements on the lived-in table, custom
	// and cached plan (EXPLAIN ANALYZE, BUFFERS).
	Explains            map[string][]LivedPlan `json:"explains"`
	CPU                 []ProcCPU              `json:"cpu"`
	TargetRehomeMs      float64                `json:"target_rehome_ms"`
	TargetSurvivorP99Ms float64                `json:"target_survivor_p99_ms"`
	RehomeMet           bool                   `json:"rehome_met"`
	SurvivorsMet        bool                   `json:"survivors_met"`
}

// StormSample is the cluster some time after the kill.
type StormSample struct {
	Seconds         float64 `json:"seconds_after_kill"`
	OpenOnSurvivors int     `json:"open_on_survivors"`
	Head            int64   `json:"head"`
}

// RollingResult is the rolling restart phase.
type RollingResult struct {
	ReconnectRun
	Users        int              `json:"users"`
	Roles        int              `json:"roles"`
	Mix          cluster.Mix      `json:"mix"`
	Restarts     []RollingRestart `json:"restarts"`
	PauseSeconds float64          `json:"pause_seconds"` // between a node's ready and the next SIGTERM
	// Latency is commit → receipt over every delivery; DuringRestarts over
	// notifications committed from a SIGTERM to 3 s after its node was
	// ready again, BetweenRestarts over the rest.
	Latency         stats.Summary `json:"latency"`
	DuringRestarts  stats.Summary `json:"latency_during_restarts"`
	BetweenRestarts stats.Summary `json:"latency_between_restarts"`
	// The clients' reconnect delays: Spread waits asked for by a closing
	// status (the longest, SpreadMaxMs), Backoffs after lost connections or
	// failed attempts.
	Spread      int     `json:"spread_waits"`
	SpreadMaxMs int64   `json:"spread_max_ms"`
	Backoffs    int     `json:"backoffs"`
	TargetP99Ms float64 `json:"target_p99_ms"`
	TargetMet   bool    `json:"target_met"`
}

// RollingRestart is one node's restart: when it was sent SIGTERM (seconds
// into the load), how long it took to exit and to be ready again.
type RollingRestart struct {
	Node          string  `json:"node"`
	Streams       int     `json:"streams"`
	StopAtSeconds float64 `json:"stop_at_seconds"`
	ExitedSeconds float64 `json:"exited_after_seconds"`
	ReadySeconds  float64 `json:"ready_after_seconds"`
}
