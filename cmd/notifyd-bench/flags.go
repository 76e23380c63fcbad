package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// errUsage marks a mistake on the command line (exit status 2).
var errUsage = errors.New("usage")

// The phases, in the order they run.
const (
	phaseThroughput = "throughput"
	phaseLatency    = "latency"
	phaseProducer   = "producer"
)

var allPhases = []string{phaseThroughput, phaseLatency, phaseProducer}

// config is every knob of a run. The defaults are the figures the targets
// are stated for; smaller values make quick runs.
type config struct {
	ServerURL  string
	Phases     map[string]bool
	JSON       bool
	CPUProfile string
	Verbose    bool

	// ServerWorkers and ServerPool configure the in-process server.
	ServerWorkers int
	ServerPool    int32

	Total               int // throughput: notifications inserted
	Batch               int // throughput: rows per INSERT statement
	ThroughputProducers int
	Window              int // throughput: most notifications inserted but not yet received

	LatencyRates     []int
	LatencyDuration  time.Duration
	LatencyProducers int

	Producers        int
	ProducerDuration time.Duration
	Rounds           int

	// Timeout bounds every wait for deliveries or for the queue to drain.
	Timeout time.Duration
	// DBSettings are applied to the bench database (ALTER DATABASE ... SET)
	// before the server connects: for experiments such as
	// plan_cache_mode=force_custom_plan, always shown in the report.
	DBSettings []dbSetting
}

// dbSetting is one -db-set name=value.
type dbSetting struct{ Name, Value string }

// settingName is what a PostgreSQL parameter name may look like (custom
// ones have a dot); anything else is refused rather than quoted.
var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("notifyd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.ServerURL, "db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"PostgreSQL server URL; a fresh database notifyd_bench_<random> is created on it and dropped at the end")
	phases := fs.String("phases", strings.Join(allPhases, ","), "comma-separated phases to run: "+strings.Join(allPhases, ", "))
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run (client and server) to this file")
	fs.BoolVar(&c.Verbose, "v", false, "show the server's info logs (default: warnings only)")
	fs.IntVar(&c.ServerWorkers, "workers", 1, "queue workers in the server")
	pool := fs.Int("pool", 10, "server database pool size")
	fs.IntVar(&c.Total, "total", 100_000, "throughput: notifications to insert")
	fs.IntVar(&c.Batch, "batch", 500, "throughput: rows per INSERT statement")
	fs.IntVar(&c.ThroughputProducers, "throughput-producers", 2, "throughput: producer goroutines")
	fs.IntVar(&c.Window, "window", 20_000, "throughput: most notifications in flight (inserted, not yet received)")
	rates := fs.String("latency-rates", "100,1000", "latency: comma-separated insert rates per second")
	fs.DurationVar(&c.LatencyDuration, "latency-duration", 10*time.Second, "latency: duration of each rate")
	fs.IntVar(&c.LatencyProducers, "latency-producers", 8, "latency: paced producer goroutines")
	fs.IntVar(&c.Producers, "producers", 8, "producer: goroutines inserting single rows")
	fs.DurationVar(&c.ProducerDuration, "producer-duration", 10*time.Second, "producer: duration of each run")
	fs.IntVar(&c.Rounds, "rounds", 2, "producer: rounds of (plain, trigger)")
	fs.Func("db-set", "name=value: ALTER DATABASE ... SET it on the bench database before the server starts (repeatable; for experiments)", func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || !settingName.MatchString(name) {
			return fmt.Errorf("want name=value with a PostgreSQL parameter name, got %q", v)
		}
		c.DBSettings = append(c.DBSettings, dbSetting{Name: name, Value: value})
		return nil
	})
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Minute, "longest wait for deliveries or for the queue to drain")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	c.ServerPool = int32(*pool)
	c.Phases = map[string]bool{}
	for p := range strings.SplitSeq(*phases, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(allPhases, p) {
			return c, fmt.Errorf("%w: -phases: unknown phase %q (want %s)", errUsage, p, strings.Join(allPhases, ", "))
		}
		c.Phases[p] = true
	}
	for r := range strings.SplitSeq(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return c, fmt.Errorf("%w: -latency-rates: %q is not a positive rate", errUsage, r)
		}
		c.LatencyRates = append(c.LatencyRates, n)
	}
	return c, c.validate()
}

// validate names the first flag whose value cannot work.
func (c config) validate() error {
	switch {
	case len(c.Phases) == 0:
		return fmt.Errorf("%w: -phases selects nothing", errUsage)
	case c.Total < 1 || c.Batch < 1 || c.ThroughputProducers < 1:
		return fmt.Errorf("%w: -total, -batch and -throughput-producers must be positive", errUsage)
	case c.Window < c.Batch:
		return fmt.Errorf("%w: -window %d must be at least -batch %d", errUsage, c.Window, c.Batch)
	case c.LatencyDuration <= 0 || c.LatencyProducers < 1:
		return fmt.Errorf("%w: -latency-duration and -latency-producers must be positive", errUsage)
	case c.Producers < 1 || c.ProducerDuration <= 0 || c.Rounds < 1:
		return fmt.Errorf("%w: -producers, -producer-duration and -rounds must be positive", errUsage)
	case c.ServerWorkers < 1 || c.ServerPool < 2:
		return fmt.Errorf("%w: -workers must be at least 1 and -pool at least 2", errUsage)
	case c.Timeout <= 0:
		return fmt.Errorf("%w: -timeout must be positive", errUsage)
	}
	return nil
}
