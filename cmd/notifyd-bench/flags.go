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
)

var allPhases = []string{phaseThroughput, phaseLatency, phaseProducer, phaseSnapshot, phaseChurn, phaseStreams, phaseBroadcast, phaseResume, phaseCluster, phaseLived,
	phaseStorm, phaseRolling, phaseVersus}

// defaultPhases is what a run without -phases measures (`make bench`):
// every phase but lived, storm, rolling, snapshot, churn and versus, which
// seed or pass millions of rows, run long or build another server, and have
// make targets of their own (`make bench-lived`, `make bench-storm`, …).
var defaultPhases = []string{phaseThroughput, phaseLatency, phaseProducer, phaseStreams, phaseBroadcast, phaseResume, phaseCluster}

// inProcess reports whether a phase runs the server inside the bench.
func inProcess(phase string) bool {
	return phase == phaseThroughput || phase == phaseLatency || phase == phaseProducer || phase == phaseSnapshot
}

// standalone reports whether a phase runs no server at all: it drives the
// database through notifyd's statements itself.
func standalone(phase string) bool { return phase == phaseChurn }

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

	SnapshotRate     int           // snapshot: inserts per second
	SnapshotDuration time.Duration // snapshot: how long the load runs with the snapshot held
	SnapshotWindow   time.Duration // snapshot: the figures' window

	ChurnRows int64 // churn: notifications passed through between the two measurements

	Producers        int
	ProducerDuration time.Duration
	Rounds           int

	// Timeout bounds every wait for deliveries or for the queue to drain.
	Timeout time.Duration
	// DBSettings are applied to the bench database (ALTER DATABASE ... SET)
	// before the server connects: for experiments such as
	// plan_cache_mode=force_custom_plan, always shown in the report.
	DBSettings []dbSetting

	// Node phases (separate processes).
	NotifydBin    string            // a built notifyd; empty: build one
	NodeEnv       map[string]string // extra settings of every node (experiments)
	ClientStreams int               // most streams one client process holds
	Strict        bool              // a missed target fails the run too

	HoldStreams int           // streams: how many, on one node
	Hold        time.Duration // streams: how long they are held
	Heartbeat   time.Duration // streams: NOTIFY_HEARTBEAT_INTERVAL

	BroadcastStreams  int
	Broadcasts        int
	BroadcastInterval time.Duration

	ResumeBehind int     // resume: notifications the stream is behind
	ResumeNoise  float64 // resume: others' notifications per one of its own, interleaved
	ResumeRounds int

	Nodes        int
	Streams      int
	Users        int
	Roles        int
	RolesPerUser int
	Rate         float64       // cluster: notifications per second
	Duration     time.Duration // cluster: how long the load runs
	HTTPShare    float64       // cluster: share of notifications POSTed over HTTP
	ResumeRate   float64       // cluster: random resumes per second, over all streams
	KillAt       float64       // cluster: when to SIGKILL a node, as a share of Duration; 0: never
	Mix          cluster.Mix   // cluster: targets other than one user

	LivedSizes []int64 // lived: table sizes measured, ascending; the table grows from one to the next
	LivedReps  int     // lived: timed repetitions of each operation per size
	LivedDense int     // lived: notifications of each dense user

	// Browser is how the storm's and the rolling restart's clients
	// reconnect: as notifyd's browser client does (fleet.Browser).
	Browser fleet.Browser

	StormRows            int64         // storm: published notifications seeded first (0: none)
	StormVictimStreams   int           // storm: streams on the node that is killed
	StormSurvivorStreams int           // storm: streams on each other node
	StormRate            float64       // storm: notifications per second
	StormRoles           int           // storm: roles; each user holds one, notifications go to them in turn
	StormBefore          time.Duration // storm: load before the kill
	StormAfter           time.Duration // storm: load after the kill
	StormWindow          time.Duration // storm: the window after the kill the storm's figures cover
	StormBehind          int64         // storm: the streams' first Last-Event-ID is this many seqs before the head
	StormReplica         int           // storm: runs on a private cluster, alternately without and with a read replica (0: one run, no replica)

	RollingStreams int           // rolling: streams, spread over the nodes
	RollingUsers   int           // rolling: users, each holding one of RollingRoles
	RollingRoles   int           // rolling: roles
	RollingRate    float64       // rolling: notifications per second
	RollingMix     cluster.Mix   // rolling: targets other than one user
	RollingRows    int64         // rolling: published notifications seeded first (0: none)
	RollingSettle  time.Duration // rolling: load before the first restart and after the last
	RollingPause   time.Duration // rolling: wait after a node is ready before stopping the next

	CentrifugoBin       string        // versus: a built Centrifugo; empty: build the pinned one
	VersusStreams       int           // versus: streams on each system in the latency runs
	VersusRate          int           // versus: messages per second in the latency runs
	VersusDuration      time.Duration // versus: length of each latency run
	VersusRounds        int           // versus: rounds, each one run per system, alternating
	VersusSatStreams    int           // versus: streams in the saturation runs
	VersusSatDuration   time.Duration // versus: publishing time of each saturation run
	VersusSatPublishers int           // versus: publishers in the saturation runs
	VersusWindow        int           // versus: most messages published but not yet on every stream (saturation)
	VersusPublish       string        // versus: how notifyd's messages are published (versusPublishModes)
}

// dbSetting is one -db-set name=value.
type dbSetting struct{ Name, Value string }

// settingName is what a PostgreSQL parameter name may look like (custom
// ones have a dot); anything else is refused rather than quoted.
var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)

// envName is what -node-env accepts as a variable name.
var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("notifyd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.ServerURL, "db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"PostgreSQL server URL; a fresh database notifyd_bench_<random> is created on it and dropped at the end")
	phases := fs.String("phases", strings.Join(defaultPhases, ","), "comma-separated phases to run: "+strings.Join(allPhases, ", ")+
		" (lived, storm, rolling, snapshot, churn and versus are not in the default: they seed millions of rows, run long or build another server)")
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
	fs.IntVar(&c.SnapshotRate, "snapshot-rate", 1000, "snapshot: single-row inserts per second")
	fs.DurationVar(&c.SnapshotDuration, "snapshot-duration", 10*time.Minute, "snapshot: how long the load runs while a snapshot is held")
	fs.DurationVar(&c.SnapshotWindow, "snapshot-window", time.Minute, "snapshot: the window the latency figures are split by")
	fs.Int64Var(&c.ChurnRows, "churn-rows", 10_000_000, "churn: notifications passed through (queued, published, read, deleted) between the measurements")
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
	fs.StringVar(&c.NotifydBin, "notifyd-bin", "", "node phases: a notifyd binary to run (default: go build ./cmd/notifyd into a temporary directory)")
	c.NodeEnv = map[string]string{}
	fs.Func("node-env", "NAME=value: a setting for every node process, e.g. NOTIFY_POLL_INTERVAL=1s (repeatable; for experiments, shown in the report)", func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || !envName.MatchString(name) {
			return fmt.Errorf("want NAME=value, got %q", v)
		}
		c.NodeEnv[name] = value
		return nil
	})
	fs.IntVar(&c.ClientStreams, "client-streams", 5000, "node phases: most streams one client process holds (open files are limited per process)")
	fs.BoolVar(&c.Strict, "strict", false, "exit with an error when a figure misses its target (correctness failures always do)")
	fs.IntVar(&c.HoldStreams, "hold-streams", 15_000, "streams: concurrent streams held by one node")
	fs.DurationVar(&c.Hold, "hold", 30*time.Second, "streams: how long the streams are held once open")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 5*time.Second, "streams: the node's NOTIFY_HEARTBEAT_INTERVAL")
	fs.IntVar(&c.BroadcastStreams, "broadcast-streams", 10_000, "broadcast: streams on the node")
	fs.IntVar(&c.Broadcasts, "broadcasts", 20, "broadcast: notifications to everyone, one at a time")
	fs.DurationVar(&c.BroadcastInterval, "broadcast-interval", time.Second, "broadcast: pause between them")
	fs.IntVar(&c.ResumeBehind, "resume-behind", 10_000, "resume: notifications the resuming stream missed")
	fs.Float64Var(&c.ResumeNoise, "resume-noise", 1, "resume: other users' notifications interleaved, per one of the stream's")
	fs.IntVar(&c.ResumeRounds, "resume-rounds", 5, "resume: repetitions (the median is the figure)")
	fs.IntVar(&c.Nodes, "nodes", 3, "cluster: notifyd processes on the one database")
	fs.IntVar(&c.Streams, "streams", 3000, "cluster: streams, spread over the nodes")
	fs.IntVar(&c.Users, "users", 1000, "cluster: users the streams belong to")
	fs.IntVar(&c.Roles, "roles", 100, "cluster: roles, R0 … R<n-1>")
	fs.IntVar(&c.RolesPerUser, "roles-per-user", 2, "cluster: each user holds 1 to this many roles, at random")
	fs.Float64Var(&c.Rate, "rate", 2000, "cluster: notifications per second")
	fs.DurationVar(&c.Duration, "duration", 60*time.Second, "cluster: how long the load runs")
	fs.Float64Var(&c.HTTPShare, "http-share", 0.1, "cluster: share of the notifications POSTed over HTTP (the rest are SQL inserts)")
	fs.Float64Var(&c.ResumeRate, "resume-rate", 20, "cluster: random resumes per second over all streams (each on a random node)")
	fs.Float64Var(&c.KillAt, "kill-at", 0.5, "cluster: SIGKILL one node at this share of -duration (0: no kill)")
	mix := fs.String("mix", "role=0.08,user+role=0.02,everyone=0.001", "cluster: shares of targets other than one user")
	sizes := fs.String("lived-sizes", "100000,1000000,10000000", "lived: comma-separated table sizes (published notifications), ascending; the table is seeded to each in turn")
	fs.IntVar(&c.LivedReps, "lived-reps", 200, "lived: timed repetitions of each operation per size (p50/p99 over them)")
	fs.IntVar(&c.LivedDense, "lived-dense", 3000, "lived: notifications of the dense user of each size (direct and by its two roles)")
	fs.Int64Var(&c.Browser.InitialMs, "browser-backoff-ms", 1000, "storm, rolling: the clients' first reconnect backoff ceiling, in ms (full jitter, doubling; notify-client.js's initialMs)")
	c.Browser.MaxMs, c.Browser.ResetAfterMs = 30_000, 60_000
	fs.Int64Var(&c.StormRows, "storm-rows", 10_000_000, "storm: published notifications seeded before the nodes start (the lived seed; 0: none)")
	fs.IntVar(&c.StormVictimStreams, "storm-victim-streams", 10_000, "storm: streams on the node that is killed")
	fs.IntVar(&c.StormSurvivorStreams, "storm-survivor-streams", 2000, "storm: streams on each of the other nodes")
	fs.Float64Var(&c.StormRate, "storm-rate", 200, "storm: notifications per second, each to one role in turn")
	fs.IntVar(&c.StormRoles, "storm-roles", 200, "storm: roles r0 … (each user holds one): each stream gets rate/roles notifications a second")
	fs.DurationVar(&c.StormBefore, "storm-before", 10*time.Second, "storm: load before the kill")
	fs.DurationVar(&c.StormAfter, "storm-after", 20*time.Second, "storm: load after the kill")
	fs.DurationVar(&c.StormWindow, "storm-window", 10*time.Second, "storm: the stretch after the kill that the survivors' latency, the publish rate and the feed's lag cover")
	fs.Int64Var(&c.StormBehind, "storm-behind", 0, "storm: every stream first opens with a Last-Event-ID this many seqs before the head, older than the nodes' windows, so each opening replays from the table (a cold start of every node; 0: from the head)")
	fs.IntVar(&c.StormReplica, "storm-replica", 0, "storm: run the storm this many times on one seeded table in a private PostgreSQL cluster of the bench's own, alternately without and with a streaming standby as the nodes' DATABASE_REPLICA_URL, and report the primary's work in each (0: one run on -db, no replica; 2: without, then with)")
	fs.IntVar(&c.RollingStreams, "rolling-streams", 9000, "rolling: streams, spread over -nodes nodes")
	fs.IntVar(&c.RollingUsers, "rolling-users", 3000, "rolling: users u0 … (each holds one role)")
	fs.IntVar(&c.RollingRoles, "rolling-roles", 300, "rolling: roles r0 …")
	fs.Float64Var(&c.RollingRate, "rolling-rate", 1000, "rolling: notifications per second")
	rollingMix := fs.String("rolling-mix", "role=0.1", "rolling: shares of targets other than one user (as -mix)")
	fs.Int64Var(&c.RollingRows, "rolling-rows", 0, "rolling: published notifications seeded before the nodes start (0: none)")
	fs.DurationVar(&c.RollingSettle, "rolling-settle", 10*time.Second, "rolling: load before the first restart and after the last")
	fs.DurationVar(&c.RollingPause, "rolling-pause", 0, "rolling: wait after a restarted node is ready before stopping the next (0: at once)")
	fs.StringVar(&c.CentrifugoBin, "centrifugo-bin", "", "versus: a Centrifugo binary to run (default: build the "+centrifugoVersion+" that cmd/notifyd-bench/centrifugo/go.mod pins)")
	fs.IntVar(&c.VersusStreams, "versus-streams", 100, "versus: streams on each system in the latency runs")
	fs.IntVar(&c.VersusRate, "versus-rate", 200, "versus: messages per second in the latency runs (one publisher)")
	fs.DurationVar(&c.VersusDuration, "versus-duration", 10*time.Second, "versus: length of each latency run")
	fs.IntVar(&c.VersusRounds, "versus-rounds", 3, "versus: rounds of (notifyd, centrifugo) runs; the figures are medians over them")
	fs.IntVar(&c.VersusSatStreams, "versus-sat-streams", 1000, "versus: streams in the saturation runs")
	fs.DurationVar(&c.VersusSatDuration, "versus-sat-duration", 5*time.Second, "versus: publishing time of each saturation run")
	fs.IntVar(&c.VersusSatPublishers, "versus-sat-publishers", 4, "versus: publishers in the saturation runs")
	fs.StringVar(&c.VersusPublish, "versus-publish", versusInsert, "versus: how notifyd's messages are published: "+
		versusInsert+" (an INSERT a worker publishes), "+versusSend+" (notify.send: born published) or "+versusHTTP+" (POST /api/notifications: born published)")
	fs.IntVar(&c.VersusWindow, "versus-window", 500, "versus: most messages published but not yet on every stream in the saturation runs (below both servers' slow-client limits)")
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
	var err error
	if c.Mix, err = cluster.ParseMix(*mix); err != nil {
		return c, fmt.Errorf("%w: -mix: %v", errUsage, err)
	}
	if c.RollingMix, err = cluster.ParseMix(*rollingMix); err != nil {
		return c, fmt.Errorf("%w: -rolling-mix: %v", errUsage, err)
	}
	if c.LivedSizes, err = parseSizes(*sizes); err != nil {
		return c, fmt.Errorf("%w: -lived-sizes: %v", errUsage, err)
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
	case c.ClientStreams < 1 || c.HoldStreams < 1 || c.BroadcastStreams < 1 || c.Streams < 1 || c.Users < 1:
		return fmt.Errorf("%w: -client-streams, -hold-streams, -broadcast-streams, -streams and -users must be positive", errUsage)
	case c.Hold <= 0 || c.Heartbeat <= 0 || c.BroadcastInterval <= 0 || c.Duration <= 0:
		return fmt.Errorf("%w: -hold, -heartbeat, -broadcast-interval and -duration must be positive", errUsage)
	case c.Broadcasts < 1 || c.ResumeBehind < 1 || c.ResumeRounds < 1 || c.ResumeNoise < 0:
		return fmt.Errorf("%w: -broadcasts, -resume-behind and -resume-rounds must be positive, -resume-noise not negative", errUsage)
	case c.Nodes < 1 || c.Nodes > 200 || c.Roles < 1 || c.RolesPerUser < 1 || c.Rate <= 0:
		return fmt.Errorf("%w: -nodes (1-200), -roles, -roles-per-user and -rate must be positive", errUsage)
	case c.HTTPShare < 0 || c.HTTPShare > 1 || c.ResumeRate < 0 || c.KillAt < 0 || c.KillAt >= 1:
		return fmt.Errorf("%w: -http-share in [0,1], -resume-rate >= 0, -kill-at in [0,1)", errUsage)
	case c.KillAt > 0 && c.Nodes < 2:
		return fmt.Errorf("%w: -kill-at needs at least 2 -nodes (its clients resume on another)", errUsage)
	case c.LivedReps < 1 || c.LivedDense < livedResumeBehind+1:
		return fmt.Errorf("%w: -lived-reps must be positive and -lived-dense more than %d (the dense resume)", errUsage, livedResumeBehind)
	case len(c.LivedSizes) > livedMaxSizes:
		return fmt.Errorf("%w: -lived-sizes: at most %d sizes (each adds broadcasts every sparse user receives)", errUsage, livedMaxSizes)
	case c.LivedSizes[0] < livedSpecialRows(c.LivedSizes, c.LivedDense)*2:
		return fmt.Errorf("%w: -lived-sizes: the first size must be at least %d rows, twice the special users' notifications within it",
			errUsage, livedSpecialRows(c.LivedSizes, c.LivedDense)*2)
	}
	return c.validateReconnects()
}

// validateReconnects checks the storm's and the rolling restart's flags.
func (c config) validateReconnects() error {
	seedMin := func(n int64) bool { return n == 0 || n >= 2*livedSpecialRows([]int64{n}, c.LivedDense) }
	switch {
	case c.Browser.InitialMs < 0:
		return fmt.Errorf("%w: -browser-backoff-ms must not be negative", errUsage)
	case c.StormVictimStreams < 1 || c.StormSurvivorStreams < 1 || c.StormRate <= 0 || c.StormRoles < 1:
		return fmt.Errorf("%w: -storm-victim-streams, -storm-survivor-streams, -storm-rate and -storm-roles must be positive", errUsage)
	case c.StormBehind < 0 || c.StormReplica < 0:
		return fmt.Errorf("%w: -storm-behind and -storm-replica must not be negative", errUsage)
	case c.StormBefore <= 0 || c.StormWindow <= 0 || c.StormAfter < c.StormWindow:
		return fmt.Errorf("%w: -storm-before and -storm-window must be positive, -storm-after at least -storm-window", errUsage)
	case (c.Phases[phaseStorm] || c.Phases[phaseRolling]) && c.Nodes < 2:
		return fmt.Errorf("%w: storm and rolling need at least 2 -nodes", errUsage)
	case c.RollingStreams < 1 || c.RollingUsers < 1 || c.RollingRoles < 1 || c.RollingRate <= 0 || c.RollingSettle <= 0 || c.RollingPause < 0:
		return fmt.Errorf("%w: -rolling-streams, -rolling-users, -rolling-roles, -rolling-rate and -rolling-settle must be positive, -rolling-pause not negative", errUsage)
	case !seedMin(c.StormRows) || !seedMin(c.RollingRows):
		return fmt.Errorf("%w: -storm-rows and -rolling-rows: 0 or at least %d", errUsage, 2*livedSpecialRows([]int64{1}, c.LivedDense))
	case c.VersusStreams < 1 || c.VersusRate < 1 || c.VersusDuration <= 0 || c.VersusRounds < 1:
		return fmt.Errorf("%w: -versus-streams, -versus-rate, -versus-duration and -versus-rounds must be positive", errUsage)
	case c.VersusSatStreams < 1 || c.VersusSatDuration <= 0 || c.VersusSatPublishers < 1 || c.VersusWindow < 1:
		return fmt.Errorf("%w: -versus-sat-streams, -versus-sat-duration, -versus-sat-publishers and -versus-window must be positive", errUsage)
	case !slices.Contains(versusPublishModes, c.VersusPublish):
		return fmt.Errorf("%w: -versus-publish must be one of %v", errUsage, versusPublishModes)
	}
	return nil
}

// parseSizes reads "100000,1000000": positive and strictly ascending.
func parseSizes(s string) ([]int64, error) {
	var out []int64
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive row count", part)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("%d after %d: sizes must ascend (the table only grows)", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no size")
	}
	return out, nil
}
