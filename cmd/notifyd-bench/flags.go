package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
)

// errUsage marks a mistake on the command line (exit status 2).
var errUsage = errors.New("usage")

// The phases, in the order they run.
const (
	phaseThroughput = "throughput"
	phaseLatency    = "latency"
	phaseProducer   = "producer"
	phaseSnapshot   = "snapshot" // single-row inserts while another session holds a snapshot
	phaseChurn      = "churn"    // the pipeline's statements before and after millions passed through
	// The phases below run notifyd as separate processes (package
	// cluster), with clients in processes of their own.
	phaseStreams   = "streams"   // many idle streams on one node: memory, heartbeats
	phaseBroadcast = "broadcast" // one notification to every stream of a node
	phaseResume    = "resume"    // a stream far behind catching up
	phaseCluster   = "cluster"   // several nodes under load, resumes, a node killed
	phaseLived     = "lived"     // one user's reads as the table grows to millions of rows
	phaseStorm     = "storm"     // a node holding most streams killed on a lived-in table: its clients re-home
	phaseRolling   = "rolling"   // every node restarted in turn (SIGTERM) under load
	phaseVersus    = "versus"    // notifyd beside Centrifugo, same client, interleaved (issue 15)
	phaseBurst     = "burst"     // streams opened all at once on one node: memory after, heartbeats, a broadcast (issue 15)
)

var allPhases = []string{phaseThroughput, phaseLatency, phaseProducer, phaseSnapshot, phaseChurn, phaseStreams, phaseBroadcast, phaseResume, phaseCluster, phaseLived,
	phaseStorm, phaseRolling, phaseVersus, phaseBurst}

// inProcess reports whether a phase runs the server inside the bench.
func inProcess(phase string) bool {
	return phase == phaseThroughput || phase == phaseLatency || phase == phaseProducer || phase == phaseSnapshot
}

// config is every knob of a run, and the table of flags that set them:
// each field's `flag` tag is its name and default, `usage` its help and
// `check` what validate requires of it (pos: > 0, nonneg: >= 0). The
// defaults are the figures the targets are stated for.
type config struct {
	// Flags is every flag's value, as the report echoes them.
	Flags map[string]string
	// The default phases are what `make bench` runs; the others have make
	// targets of their own (`make bench-lived`, …).
	ServerURL  string `flag:"db=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" usage:"PostgreSQL server URL; a fresh database notifyd_bench_<random> is created on it and dropped at the end"`
	PhaseList  string `flag:"phases=throughput,latency,producer,streams,broadcast,resume,cluster" usage:"comma-separated phases to run: throughput, latency, producer, snapshot, churn, streams, broadcast, resume, cluster, lived, storm, rolling, versus, burst (lived, storm, rolling, snapshot, churn, versus and burst are not in the default: they seed millions of rows, run long or build another server)"`
	Phases     map[string]bool
	JSON       bool   `flag:"json" usage:"print the report as JSON instead of a table"`
	CPUProfile string `flag:"cpuprofile" usage:"write a CPU profile of the whole run (client and server) to this file"`
	Verbose    bool   `flag:"v" usage:"show the server's info logs (default: warnings only)"`

	ServerWorkers       int `flag:"workers=1" check:"pos" usage:"queue workers in the server"`
	ServerPool          int `flag:"pool=10" usage:"server database pool size"`
	Total               int `flag:"total=100000" check:"pos" usage:"throughput: notifications to insert"`
	Batch               int `flag:"batch=500" check:"pos" usage:"throughput: rows per INSERT statement"`
	ThroughputProducers int `flag:"throughput-producers=2" check:"pos" usage:"throughput: producer goroutines"`
	Window              int `flag:"window=20000" usage:"throughput: most notifications in flight (inserted, not yet received)"`

	LatencyList      string `flag:"latency-rates=100,1000" usage:"latency: comma-separated insert rates per second"`
	LatencyRates     []int64
	LatencyDuration  time.Duration `flag:"latency-duration=10s" check:"pos" usage:"latency: duration of each rate"`
	LatencyProducers int           `flag:"latency-producers=8" check:"pos" usage:"latency: paced producer goroutines"`
	SnapshotRate     int           `flag:"snapshot-rate=1000" check:"pos" usage:"snapshot: single-row inserts per second"`
	SnapshotDuration time.Duration `flag:"snapshot-duration=10m" check:"pos" usage:"snapshot: how long the load runs while a snapshot is held"`
	SnapshotWindow   time.Duration `flag:"snapshot-window=1m" check:"pos" usage:"snapshot: the window the latency figures are split by"`
	ChurnRows        int64         `flag:"churn-rows=10000000" check:"pos" usage:"churn: notifications passed through (queued, published, read, deleted) between the measurements"`
	ChurnKeep        int64         `flag:"churn-keep=100000" usage:"churn: the newest notifications retention leaves in place, as a retention period would (0: it deletes everything published)"`
	Producers        int           `flag:"producers=8" check:"pos" usage:"producer: goroutines inserting single rows"`
	ProducerDuration time.Duration `flag:"producer-duration=10s" check:"pos" usage:"producer: duration of each run"`
	Rounds           int           `flag:"rounds=2" check:"pos" usage:"producer: rounds of (plain, trigger)"`
	DBSettings       settings      `flag:"db-set" usage:"name=value: ALTER DATABASE ... SET it on the bench database before the server starts (repeatable; for experiments)"`
	Timeout          time.Duration `flag:"timeout=2m" check:"pos" usage:"longest wait for deliveries or for the queue to drain"`

	// Node phases (separate processes).
	NotifydBin    string        `flag:"notifyd-bin" usage:"node phases: a notifyd binary to run (default: go build ./cmd/notifyd into a temporary directory)"`
	NodeEnv       settings      `flag:"node-env" usage:"NAME=value: a setting for every node process, e.g. NOTIFY_POLL_INTERVAL=1s (repeatable; for experiments, shown in the report)"`
	ClientStreams int           `flag:"client-streams=5000" check:"pos" usage:"node phases: most streams one client process holds (open files are limited per process)"`
	Strict        bool          `flag:"strict" usage:"exit with an error when a figure misses its target (correctness failures always do)"`
	HoldStreams   int           `flag:"hold-streams=15000" check:"pos" usage:"streams: concurrent streams held by one node"`
	Hold          time.Duration `flag:"hold=30s" check:"pos" usage:"streams: how long the streams are held once open"`
	Heartbeat     time.Duration `flag:"heartbeat=5s" check:"pos" usage:"streams: the node's NOTIFY_HEARTBEAT_INTERVAL"`

	BroadcastStreams  int           `flag:"broadcast-streams=10000" check:"pos" usage:"broadcast: streams on the node"`
	Broadcasts        int           `flag:"broadcasts=20" check:"pos" usage:"broadcast: notifications to everyone, one at a time"`
	BroadcastInterval time.Duration `flag:"broadcast-interval=1s" check:"pos" usage:"broadcast: pause between them"`
	ResumeBehind      int           `flag:"resume-behind=10000" check:"pos" usage:"resume: notifications the resuming stream missed"`
	ResumeNoise       float64       `flag:"resume-noise=1" check:"nonneg" usage:"resume: other users' notifications interleaved, per one of the stream's"`
	ResumeRounds      int           `flag:"resume-rounds=5" check:"pos" usage:"resume: repetitions (the median is the figure)"`

	Nodes        int           `flag:"nodes=3" check:"pos" usage:"cluster: notifyd processes on the one database"`
	Streams      int           `flag:"streams=3000" check:"pos" usage:"cluster: streams, spread over the nodes"`
	Users        int           `flag:"users=1000" check:"pos" usage:"cluster: users the streams belong to"`
	Roles        int           `flag:"roles=100" check:"pos" usage:"cluster: roles, R0 … R<n-1>"`
	RolesPerUser int           `flag:"roles-per-user=2" check:"pos" usage:"cluster: each user holds 1 to this many roles, at random"`
	Rate         float64       `flag:"rate=2000" check:"pos" usage:"cluster: notifications per second"`
	Duration     time.Duration `flag:"duration=60s" check:"pos" usage:"cluster: how long the load runs"`
	HTTPShare    float64       `flag:"http-share=0.1" check:"nonneg" usage:"cluster: share of the notifications POSTed over HTTP (the rest are SQL inserts)"`
	ResumeRate   float64       `flag:"resume-rate=20" check:"nonneg" usage:"cluster: random resumes per second over all streams (each on a random node)"`
	KillAt       float64       `flag:"kill-at=0.5" check:"nonneg" usage:"cluster: SIGKILL one node at this share of -duration (0: no kill)"`
	MixSpec      string        `flag:"mix=role=0.08,user+role=0.02,everyone=0.001" usage:"cluster: shares of targets other than one user"`
	Mix          cluster.Mix   // MixSpec parsed

	LivedList  string `flag:"lived-sizes=100000,1000000,10000000" usage:"lived: comma-separated table sizes (published notifications), ascending; the table is seeded to each in turn"`
	LivedSizes []int64
	LivedReps  int `flag:"lived-reps=200" check:"pos" usage:"lived: timed repetitions of each operation per size (p50/p99 over them)"`
	LivedDense int `flag:"lived-dense=3000" usage:"lived: notifications of the dense user of each size (direct and by its two roles)"`

	// Browser is how the storm's and the rolling restart's clients
	// reconnect: as notifyd's browser client does.
	Browser   fleet.Browser
	BackoffMs int64 `flag:"browser-backoff-ms=1000" check:"nonneg" usage:"storm, rolling: the clients' first reconnect backoff ceiling, in ms (full jitter, doubling; notify-client.js's initialMs)"`
	LeastConn bool  `flag:"least-conn" usage:"storm, rolling: a stream that moves goes to the node holding the fewest of its client process's streams, as behind a least-connections load balancer (nginx least_conn); default: a node at random"`

	StormRows            int64         `flag:"storm-rows=10000000" check:"nonneg" usage:"storm: published notifications seeded before the nodes start (the lived seed; 0: none)"`
	StormVictimStreams   int           `flag:"storm-victim-streams=10000" check:"pos" usage:"storm: streams on the node that is killed"`
	StormSurvivorStreams int           `flag:"storm-survivor-streams=2000" check:"pos" usage:"storm: streams on each of the other nodes"`
	StormRate            float64       `flag:"storm-rate=200" check:"pos" usage:"storm: notifications per second, each to one role in turn"`
	StormRoles           int           `flag:"storm-roles=200" check:"pos" usage:"storm: roles r0 … (each user holds one): each stream gets rate/roles notifications a second"`
	StormBefore          time.Duration `flag:"storm-before=10s" check:"pos" usage:"storm: load before the kill"`
	StormAfter           time.Duration `flag:"storm-after=20s" check:"pos" usage:"storm: load after the kill"`
	StormWindow          time.Duration `flag:"storm-window=10s" check:"pos" usage:"storm: the stretch after the kill that the survivors' latency, the publish rate and the feed's lag cover"`
	StormBehind          int64         `flag:"storm-behind=0" check:"nonneg" usage:"storm: every stream first opens with a Last-Event-ID this many seqs before the head, older than the nodes' windows, so each opening replays from the table (a cold start of every node; 0: from the head)"`
	StormReplica         int           `flag:"storm-replica=0" check:"nonneg" usage:"storm: run the storm this many times on one seeded table in a private PostgreSQL cluster of the bench's own, alternately without and with a streaming standby as the nodes' DATABASE_REPLICA_URL, and report the primary's work in each (0: one run on -db, no replica; 2: without, then with)"`

	RollingStreams int           `flag:"rolling-streams=9000" check:"pos" usage:"rolling: streams, spread over -nodes nodes"`
	RollingUsers   int           `flag:"rolling-users=3000" check:"pos" usage:"rolling: users u0 … (each holds one role)"`
	RollingRoles   int           `flag:"rolling-roles=300" check:"pos" usage:"rolling: roles r0 …"`
	RollingRate    float64       `flag:"rolling-rate=1000" check:"pos" usage:"rolling: notifications per second"`
	RollingMixSpec string        `flag:"rolling-mix=role=0.1" usage:"rolling: shares of targets other than one user (as -mix)"`
	RollingMix     cluster.Mix   // RollingMixSpec parsed
	RollingRows    int64         `flag:"rolling-rows=0" check:"nonneg" usage:"rolling: published notifications seeded before the nodes start (0: none)"`
	RollingSettle  time.Duration `flag:"rolling-settle=10s" check:"pos" usage:"rolling: load before the first restart and after the last"`
	RollingPause   time.Duration `flag:"rolling-pause=0s" check:"nonneg" usage:"rolling: wait after a restarted node is ready before stopping the next (0: at once)"`

	CentrifugoBin       string        `flag:"centrifugo-bin" usage:"versus: a Centrifugo binary to run (default: build the v6.9.1 that cmd/notifyd-bench/centrifugo/go.mod pins)"`
	VersusStreams       int           `flag:"versus-streams=100" check:"pos" usage:"versus: streams on each system in the latency runs"`
	VersusRate          int           `flag:"versus-rate=200" check:"pos" usage:"versus: messages per second in the latency runs (one publisher)"`
	VersusDuration      time.Duration `flag:"versus-duration=10s" check:"pos" usage:"versus: length of each latency run"`
	VersusRounds        int           `flag:"versus-rounds=3" check:"pos" usage:"versus: rounds of (notifyd, centrifugo) runs; the figures are medians over them"`
	VersusSatStreams    int           `flag:"versus-sat-streams=1000" check:"pos" usage:"versus: streams in the saturation runs"`
	VersusSatDuration   time.Duration `flag:"versus-sat-duration=5s" check:"pos" usage:"versus: publishing time of each saturation run"`
	VersusSatPublishers int           `flag:"versus-sat-publishers=4" check:"pos" usage:"versus: publishers in the saturation runs"`
	VersusWindow        int           `flag:"versus-window=500" check:"pos" usage:"versus: most messages published but not yet on every stream in the saturation runs (below both servers' slow-client limits)"`
	VersusPublish       string        `flag:"versus-publish=insert" usage:"versus: how notifyd's messages are published: insert (an INSERT a worker publishes), send (notify.send: born published) or http (POST /api/notifications: born published)"`

	BurstList              string `flag:"burst-streams=8000,100000" usage:"burst: comma-separated stream counts, ascending, each opened at once on a fresh node"`
	BurstSizes             []int64
	BurstShapeList         string `flag:"burst-users=one,many" usage:"burst: whose streams: one (every stream one user's; NOTIFY_MAX_STREAMS_PER_USER is raised for it) and/or many (-burst-per-user streams a user)"`
	BurstShapes            []string
	BurstPerUser           int           `flag:"burst-per-user=10" check:"pos" usage:"burst: streams of each user with -burst-users many"`
	BurstParallel          int           `flag:"burst-parallel=0" check:"nonneg" usage:"burst: streams a client process opens at once (0: all of its streams)"`
	BurstSettle            time.Duration `flag:"burst-settle=5s" check:"nonneg" usage:"burst: wait after the last stream opened before the memory \"after the burst\" is read (it is also read at once)"`
	BurstIdle              time.Duration `flag:"burst-idle=60s" check:"pos" usage:"burst: idle time from the last stream opened until memory is read again (heartbeats are counted after -burst-settle)"`
	BurstHeartbeat         time.Duration `flag:"burst-heartbeat=10s" check:"pos" usage:"burst: the node's NOTIFY_HEARTBEAT_INTERVAL"`
	BurstBroadcasts        int           `flag:"burst-broadcasts=5" check:"pos" usage:"burst: notifications to everyone after the idle time, one at a time"`
	BurstBroadcastInterval time.Duration `flag:"burst-broadcast-interval=5s" check:"pos" usage:"burst: pause before each broadcast"`
	BurstRounds            int           `flag:"burst-rounds=1" check:"pos" usage:"burst: runs of each size and shape (the report gives medians)"`
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("notifyd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		name, def, _ := strings.Cut(v.Type().Field(i).Tag.Get("flag"), "=")
		usage := v.Type().Field(i).Tag.Get("usage")
		// The defaults in the tags are constants: a typo shows as a zero
		// default in -h.
		switch p := v.Field(i).Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, def, usage)
		case *bool:
			fs.BoolVar(p, name, def == "true", usage)
		case *time.Duration:
			d, _ := time.ParseDuration(def)
			fs.DurationVar(p, name, d, usage)
		case *float64:
			x, _ := strconv.ParseFloat(def, 64)
			fs.Float64Var(p, name, x, usage)
		case *int:
			n, _ := strconv.Atoi(def)
			fs.IntVar(p, name, n, usage)
		case *int64:
			n, _ := strconv.ParseInt(def, 10, 64)
			fs.Int64Var(p, name, n, usage)
		case flag.Value: // -db-set, -node-env
			fs.Var(p, name, usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	c.Flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { c.Flags[f.Name] = f.Value.String() })
	var err error
	if c.Mix, err = cluster.ParseMix(c.MixSpec); err != nil {
		return c, fmt.Errorf("%w: -mix: %v", errUsage, err)
	}
	if c.RollingMix, err = cluster.ParseMix(c.RollingMixSpec); err != nil {
		return c, fmt.Errorf("%w: -rolling-mix: %v", errUsage, err)
	}
	c.Phases = map[string]bool{}
	for p := range strings.SplitSeq(c.PhaseList, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(allPhases, p) {
			return c, fmt.Errorf("%w: -phases: unknown phase %q (want %s)", errUsage, p, strings.Join(allPhases, ", "))
		}
		c.Phases[p] = p != ""
	}
	if c.LatencyRates, err = parseList(c.LatencyList, false); err != nil {
		return c, fmt.Errorf("%w: -latency-rates: %v", errUsage, err)
	}
	if c.LivedSizes, err = parseList(c.LivedList, true); err != nil {
		return c, fmt.Errorf("%w: -lived-sizes: %v", errUsage, err)
	}
	if c.BurstSizes, err = parseList(c.BurstList, true); err != nil {
		return c, fmt.Errorf("%w: -burst-streams: %v", errUsage, err)
	}
	for sh := range strings.SplitSeq(c.BurstShapeList, ",") {
		if sh != burstOneUser && sh != burstManyUsers {
			return c, fmt.Errorf("%w: -burst-users: %q is neither %s nor %s", errUsage, sh, burstOneUser, burstManyUsers)
		}
		c.BurstShapes = append(c.BurstShapes, sh)
	}
	c.Browser = fleet.Browser{InitialMs: c.BackoffMs, MaxMs: 30_000, ResetAfterMs: 60_000}
	return c, c.validate()
}

// validate names the first flag whose value cannot work: first the
// `check` tags, then what relates flags to each other.
func (c config) validate() error {
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("flag"), "=")
		x := 0.0
		switch f := v.Field(i); f.Kind() {
		case reflect.Int, reflect.Int32, reflect.Int64:
			x = float64(f.Int())
		case reflect.Float64:
			x = f.Float()
		}
		switch check := sf.Tag.Get("check"); {
		case check == "pos" && x <= 0:
			return fmt.Errorf("%w: -%s must be positive", errUsage, name)
		case check == "nonneg" && x < 0:
			return fmt.Errorf("%w: -%s must not be negative", errUsage, name)
		}
	}
	if _, err := pgconn.ParseConfig(c.ServerURL); err != nil {
		return fmt.Errorf("%w: -db: %v", errUsage, err)
	}
	special := 2 * livedSpecialRows([]int64{1}, c.LivedDense)
	switch {
	case !slices.ContainsFunc(allPhases, func(p string) bool { return c.Phases[p] }):
		return fmt.Errorf("%w: -phases selects nothing", errUsage)
	case c.Window < c.Batch:
		return fmt.Errorf("%w: -window %d must be at least -batch %d", errUsage, c.Window, c.Batch)
	case c.ServerPool < 2:
		return fmt.Errorf("%w: -pool must be at least 2", errUsage)
	case c.Nodes > 200:
		return fmt.Errorf("%w: -nodes: at most 200", errUsage)
	case c.HTTPShare > 1 || c.KillAt >= 1:
		return fmt.Errorf("%w: -http-share in [0,1], -kill-at in [0,1)", errUsage)
	case c.KillAt > 0 && c.Nodes < 2:
		return fmt.Errorf("%w: -kill-at needs at least 2 -nodes (its clients resume on another)", errUsage)
	case c.LivedDense < livedResumeBehind+1:
		return fmt.Errorf("%w: -lived-dense must be more than %d (the dense resume)", errUsage, livedResumeBehind)
	case len(c.LivedSizes) > livedMaxSizes:
		return fmt.Errorf("%w: -lived-sizes: at most %d sizes (each adds broadcasts every sparse user receives)", errUsage, livedMaxSizes)
	case c.LivedSizes[0] < livedSpecialRows(c.LivedSizes, c.LivedDense)*2:
		return fmt.Errorf("%w: -lived-sizes: the first size must be at least %d rows, twice the special users' notifications within it",
			errUsage, livedSpecialRows(c.LivedSizes, c.LivedDense)*2)
	case c.BurstSettle >= c.BurstIdle:
		return fmt.Errorf("%w: -burst-settle must be shorter than -burst-idle", errUsage)
	case c.StormAfter < c.StormWindow:
		return fmt.Errorf("%w: -storm-after must be at least -storm-window", errUsage)
	case (c.Phases[phaseStorm] || c.Phases[phaseRolling]) && c.Nodes < 2:
		return fmt.Errorf("%w: storm and rolling need at least 2 -nodes", errUsage)
	case c.StormRows > 0 && c.StormRows < special || c.RollingRows > 0 && c.RollingRows < special:
		return fmt.Errorf("%w: -storm-rows and -rolling-rows: 0 or at least %d", errUsage, special)
	case !slices.Contains(versusPublishModes, c.VersusPublish):
		return fmt.Errorf("%w: -versus-publish must be one of %v", errUsage, versusPublishModes)
	}
	return nil
}

// parseList reads "100,1000": positive integers, strictly ascending if
// ascending is set.
func parseList(s string, ascending bool) ([]int64, error) {
	var out []int64
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", part)
		}
		if ascending && len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("%d after %d: sizes must ascend (the table only grows)", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	return out, nil
}

// setting is one name=value of -db-set (a PostgreSQL parameter: custom
// ones have a dot) or -node-env (an environment variable).
type setting struct{ Name, Value string }

// settingName is what a setting's name may look like; anything else is
// refused rather than quoted.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// settings is a repeatable flag of settings, in the order given.
type settings []setting

// Map is the settings by name, a later one winning.
func (s settings) Map() map[string]string {
	m := map[string]string{}
	for _, x := range s {
		m[x.Name] = x.Value
	}
	return m
}

func (s *settings) String() string {
	return strings.Join(rowsOf(*s, func(_ int, x setting) string { return x.Name + "=" + x.Value }), ", ")
}

func (s *settings) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || !settingName.MatchString(name) {
		return fmt.Errorf("want name=value, got %q", v)
	}
	*s = append(*s, setting{Name: name, Value: value})
	return nil
}
