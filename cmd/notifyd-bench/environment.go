package main

import (
	"context"
	"runtime"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// Environment is what the figures depend on besides the code: they are
// only comparable between runs with the same environment.
type Environment struct {
	Time            time.Time         `json:"time"`
	Cores           int               `json:"cores"`
	GOMAXPROCS      int               `json:"gomaxprocs"`
	GoVersion       string            `json:"go_version"`
	Platform        string            `json:"platform"`
	PostgresVersion string            `json:"postgres_version"`
	PostgresConfig  map[string]string `json:"postgres_settings"`
	Database        string            `json:"database"`
	LoadBefore      float64           `json:"loadavg1_before"` // before the bench started; -1 unknown
	ServerURL       string            `json:"server_url"`
}

// postgresSettings are the server settings that move insert and commit
// rates the most.
var postgresSettings = []string{"synchronous_commit", "fsync", "shared_buffers", "max_wal_size", "wal_level"}

func describeEnvironment(ctx context.Context, e *env) Environment {
	return describe(ctx, e.admin, e.db.Name, e.cfg.ServerURL)
}

// describeServer describes the machine and the PostgreSQL server at
// serverURL, for runs whose phases each have their own database.
func describeServer(ctx context.Context, serverURL string) Environment {
	pool, err := newPool(ctx, serverURL, 1, "notifyd-bench-admin")
	if err != nil {
		env := describe(ctx, nil, "", serverURL)
		env.PostgresVersion = "unknown (" + err.Error() + ")"
		return env
	}
	defer pool.Close()
	return describe(ctx, pool, "(one fresh database per phase)", serverURL)
}

func describe(ctx context.Context, pool *pgxpool.Pool, database, serverURL string) Environment {
	env := Environment{Time: time.Now().UTC().Truncate(time.Second), Cores: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		PostgresConfig: map[string]string{}, Database: database, ServerURL: redact(serverURL)}
	if pool == nil {
		return env
	}
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&env.PostgresVersion); err != nil {
		env.PostgresVersion = "unknown (" + err.Error() + ")"
	}
	for _, name := range postgresSettings {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			env.PostgresConfig[name] = v
		}
	}
	return env
}

// Settings are the bench's own parameters, echoed in the report.
type Settings struct {
	Phases              []string `json:"phases"`
	ServerWorkers       int      `json:"server_workers"`
	ServerPool          int32    `json:"server_pool"`
	Total               int      `json:"throughput_total"`
	Batch               int      `json:"throughput_batch"`
	ThroughputProducers int      `json:"throughput_producers"`
	Window              int      `json:"throughput_window"`
	LatencyRates        []int    `json:"latency_rates"`
	LatencySeconds      float64  `json:"latency_seconds"`
	LatencyProducers    int      `json:"latency_producers"`
	Producers           int      `json:"producers"`
	ProducerSeconds     float64  `json:"producer_seconds"`
	Rounds              int      `json:"rounds"`
	DBSettings          []string `json:"db_settings,omitempty"`
	NodeEnv             []string `json:"node_env,omitempty"`
	NotifydBin          string   `json:"notifyd_bin,omitempty"`
	// Node phases.
	ClientStreams     int         `json:"client_streams"`
	HoldStreams       int         `json:"hold_streams"`
	HoldSeconds       float64     `json:"hold_seconds"`
	HeartbeatSeconds  float64     `json:"heartbeat_seconds"`
	BroadcastStreams  int         `json:"broadcast_streams"`
	Broadcasts        int         `json:"broadcasts"`
	BroadcastInterval float64     `json:"broadcast_interval_seconds"`
	ResumeBehind      int         `json:"resume_behind"`
	ResumeNoise       float64     `json:"resume_noise"`
	ResumeRounds      int         `json:"resume_rounds"`
	Nodes             int         `json:"nodes"`
	Streams           int         `json:"streams"`
	Users             int         `json:"users"`
	Roles             int         `json:"roles"`
	RolesPerUser      int         `json:"roles_per_user"`
	Rate              float64     `json:"rate"`
	DurationSeconds   float64     `json:"duration_seconds"`
	HTTPShare         float64     `json:"http_share"`
	ResumeRate        float64     `json:"resume_rate"`
	KillAt            float64     `json:"kill_at"`
	Mix               cluster.Mix `json:"mix"`
	LivedSizes        []int64     `json:"lived_sizes"`
	LivedReps         int         `json:"lived_reps"`
	LivedDense        int         `json:"lived_dense"`
}

func (c config) settings() Settings {
	var phases []string
	for _, p := range allPhases {
		if c.Phases[p] {
			phases = append(phases, p)
		}
	}
	var sets []string
	for _, st := range c.DBSettings {
		sets = append(sets, st.Name+"="+st.Value)
	}
	var nodeEnv []string
	for k, v := range c.NodeEnv {
		nodeEnv = append(nodeEnv, k+"="+v)
	}
	slices.Sort(nodeEnv)
	return Settings{DBSettings: sets, NodeEnv: nodeEnv, NotifydBin: c.NotifydBin, Phases: phases, ServerWorkers: c.ServerWorkers, ServerPool: c.ServerPool,
		Total: c.Total, Batch: c.Batch, ThroughputProducers: c.ThroughputProducers, Window: c.Window,
		LatencyRates: c.LatencyRates, LatencySeconds: c.LatencyDuration.Seconds(), LatencyProducers: c.LatencyProducers,
		Producers: c.Producers, ProducerSeconds: c.ProducerDuration.Seconds(), Rounds: c.Rounds,
		ClientStreams: c.ClientStreams, HoldStreams: c.HoldStreams, HoldSeconds: c.Hold.Seconds(), HeartbeatSeconds: c.Heartbeat.Seconds(),
		BroadcastStreams: c.BroadcastStreams, Broadcasts: c.Broadcasts, BroadcastInterval: c.BroadcastInterval.Seconds(),
		ResumeBehind: c.ResumeBehind, ResumeNoise: c.ResumeNoise, ResumeRounds: c.ResumeRounds,
		Nodes: c.Nodes, Streams: c.Streams, Users: c.Users, Roles: c.Roles, RolesPerUser: c.RolesPerUser, Rate: c.Rate,
		DurationSeconds: c.Duration.Seconds(), HTTPShare: c.HTTPShare, ResumeRate: c.ResumeRate, KillAt: c.KillAt, Mix: c.Mix,
		LivedSizes: c.LivedSizes, LivedReps: c.LivedReps, LivedDense: c.LivedDense}
}
