package main

import (
	"context"
	"runtime"
	"time"
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
	env := Environment{Time: time.Now().UTC().Truncate(time.Second), Cores: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		PostgresConfig: map[string]string{}, Database: e.db.Name, ServerURL: redact(e.cfg.ServerURL)}
	if err := e.admin.QueryRow(ctx, "SHOW server_version").Scan(&env.PostgresVersion); err != nil {
		env.PostgresVersion = "unknown (" + err.Error() + ")"
	}
	for _, name := range postgresSettings {
		var v string
		if err := e.admin.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
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
	return Settings{DBSettings: sets, Phases: phases, ServerWorkers: c.ServerWorkers, ServerPool: c.ServerPool,
		Total: c.Total, Batch: c.Batch, ThroughputProducers: c.ThroughputProducers, Window: c.Window,
		LatencyRates: c.LatencyRates, LatencySeconds: c.LatencyDuration.Seconds(), LatencyProducers: c.LatencyProducers,
		Producers: c.Producers, ProducerSeconds: c.ProducerDuration.Seconds(), Rounds: c.Rounds}
}
