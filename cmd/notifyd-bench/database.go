package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
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
		PostgresConfig: map[string]string{}, Database: database, ServerURL: postgres.Redact(serverURL)}
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

// createDatabase creates the bench's own database, notifyd_bench_<random>,
// on -db, with -db-set's settings as its defaults for every later
// connection. It starts empty: app.Start migrates it, exactly as a first
// deployment would. (The tests clone a migrated template instead; a
// benchmark runs once, so migrating costs nothing.)
func createDatabase(ctx context.Context, cfg config) (*pgtest.Scratch, error) {
	return pgtest.CreateScratch(ctx, cfg.ServerURL, pgtest.ScratchConfig{Prefix: "notifyd_bench", Settings: cfg.DBSettings.Map()})
}

// newPool opens a pool of exactly n connections, all connected before it
// returns, so no timed run pays for connection setup.
func newPool(ctx context.Context, dbURL string, n int, appName string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pc.MaxConns, pc.MinConns = int32(n), int32(n)
	pc.ConnConfig.RuntimeParams["application_name"] = appName
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("connect producer: %w", err)
		}
		conns = append(conns, c)
	}
	return pool, nil
}

// sampleQuery lists every client backend of the cluster: this database's
// with their application, state, wait and statement; other databases'
// only to count them as other work.
const sampleQuery = `SELECT pid, datname = current_database(), COALESCE(application_name, ''),
	CASE WHEN state = 'active' THEN COALESCE(wait_event_type || ':' || wait_event, 'CPU')
	     ELSE COALESCE(state, 'unknown') END,
	state = 'active', query
	FROM pg_stat_activity
	WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`

// sampler watches PostgreSQL while a phase or a run goes on. The server's
// Go profile cannot see inside PostgreSQL, and on a shared machine wall
// clock figures move with the neighbours: CPU seconds per backend group
// (read from /proc, PostgreSQL being local), what each backend was waiting
// on, and which statement the server's backends were running say where the
// time went even when the rates are noisy.
type sampler struct {
	mu     sync.Mutex
	states map[string]map[string]int // application -> state -> samples
	stmts  map[string]int            // notifyd's active samples by statement
	cpu    map[int]*pidCPU
	first  bool
	other  struct{ sum, n, max int }
	goCPU  time.Duration
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
}

type pidCPU struct {
	app        string
	base, last time.Duration
}

func startSampler(ctx context.Context, pool *pgxpool.Pool, every time.Duration) *sampler {
	s := &sampler{states: map[string]map[string]int{}, stmts: map[string]int{}, cpu: map[int]*pidCPU{},
		first: true, goCPU: processCPU(), start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample(ctx, pool)
			select {
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) sample(ctx context.Context, pool *pgxpool.Pool) {
	rows, err := pool.Query(ctx, sampleQuery)
	if err != nil {
		return
	}
	defer rows.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	others := 0
	for rows.Next() {
		var pid int
		var ours, active bool
		var app, state, query string
		if rows.Scan(&pid, &ours, &app, &state, &active, &query) != nil {
			return
		}
		if !ours {
			if active {
				others++
			}
			continue
		}
		app = cmp.Or(app, "notifyd-listener") // the LISTEN connection sets no name
		if s.states[app] == nil {
			s.states[app] = map[string]int{}
		}
		s.states[app][state]++
		if active && app == "notifyd" {
			s.stmts[statementKind(query, "")]++
		}
		if cpu, err := cluster.CPUTime(pid); err == nil {
			p := s.cpu[pid]
			if p == nil {
				p = &pidCPU{app: app}
				if s.first { // seen at the start: count from here; later ones are new backends
					p.base = cpu
				}
				s.cpu[pid] = p
			}
			p.last = cpu
		}
	}
	s.first = false
	s.other.sum, s.other.n, s.other.max = s.other.sum+others, s.other.n+1, max(s.other.max, others)
}

// Profile is what a sampler saw during one phase or run.
type Profile struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	// ProcessCPU is this process's CPU seconds: the server's Go code and the
	// bench's client together.
	ProcessCPU float64 `json:"process_cpu_seconds"`
	// BackendCPU is PostgreSQL backend CPU seconds by application_name:
	// notifyd (the server's pool: worker, feed), notifyd-listener, and the
	// bench's producers.
	BackendCPU map[string]float64 `json:"backend_cpu_seconds"`
	// ServerStatements is what the server's active backends were running,
	// as shares of samples.
	ServerStatements []WaitShare `json:"server_statements"`
	// Waits is each application's states, as shares of samples.
	Waits map[string][]WaitShare `json:"waits"`
	// OtherActive is the mean (and OtherMax the most) active backends in
	// other databases: work sharing the server and the machine.
	OtherActive float64 `json:"other_db_active_backends"`
	OtherMax    int     `json:"other_db_active_backends_max"`
}

// WaitShare is the share of samples spent in one state or statement.
type WaitShare struct {
	State   string  `json:"state"`
	Percent float64 `json:"percent"`
}

// Stop ends sampling and summarizes it.
func (s *sampler) Stop(phase string) Profile {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	p := Profile{Phase: phase, Seconds: time.Since(s.start).Seconds(), ProcessCPU: (processCPU() - s.goCPU).Seconds(),
		BackendCPU: map[string]float64{}, Waits: map[string][]WaitShare{}, OtherMax: s.other.max}
	for _, c := range s.cpu {
		p.BackendCPU[c.app] += (c.last - c.base).Seconds()
	}
	for app, states := range s.states {
		p.Waits[app] = shareOf(states, 5)
	}
	p.ServerStatements = shareOf(s.stmts, 6)
	if s.other.n > 0 {
		p.OtherActive = float64(s.other.sum) / float64(s.other.n)
	}
	return p
}

func shareOf(counts map[string]int, top int) []WaitShare {
	total := 0
	for _, n := range counts {
		total += n
	}
	var out []WaitShare
	for k, n := range counts {
		out = append(out, WaitShare{State: k, Percent: 100 * float64(n) / float64(total)})
	}
	slices.SortFunc(out, func(a, b WaitShare) int { return cmp.Compare(b.Percent, a.Percent) })
	return out[:min(top, len(out))]
}

// statementKinds names notifyd's statements (internal/postgres) by a
// piece of their text: the first a statement contains names it. The
// sampler sees them in pg_stat_activity, the storm with a replica in
// pg_stat_statements; the names are for the report only.
var statementKinds = []struct{ needle, name string }{
	{"WITH mine AS", "publish (stamp seqs)"},
	{"WITH due AS", "claim"},
	{"u(through, count", "opening (mutes, unread count, head)"},
	{"count(*), count(*) FILTER", "unread count"},
	{"p.user_id = ANY", "mutes of resuming streams"},
	{"r.reason, n.id", "feed read"},
	{"n.seq > $3 AND n.seq <= $4", "replay read"},
	{"n.seq < $3 AND n.seq > $4", "history"},
	{"st.seq < $3 AND st.seq > $4", "history"},
	{"pg_advisory_lock_shared", "mark busy"},
	{"pg_advisory_unlock_shared", "mark idle"},
	{"pg_advisory_xact_lock", "mark idle: wait for inserts"},
	{"min(next_attempt_at)", "next due"},
	{"UPDATE notify.queue_items", "rescue/fail/release"},
	{"INSERT INTO notify.notifications", "inserts"},
	{"(s.notification).", "send (born published)"},
	{"queue_items", "queue, other"},
	{"pg_last_wal_replay_lsn", "replica checks, fences, nudges"},
	{"pg_current_wal_insert_lsn", "replica checks, fences, nudges"},
	{"pg_current_xact_id", "replica checks, fences, nudges"},
}

// statementKind names query by statementKinds; other names the rest (""
// for the query's own start).
func statementKind(query, other string) string {
	q := strings.Join(strings.Fields(query), " ")
	for _, k := range statementKinds {
		if strings.Contains(q, k.needle) {
			return k.name
		}
	}
	return cmp.Or(other, q[:min(len(q), 40)])
}

// writeCPUPerNotification turns the throughput phase's CPU into a cost
// per notification and the rate the machine's cores could sustain at that
// cost if nothing else ran and every part ran in parallel: a ceiling that
// separates "the design costs too much CPU" from "the run was disturbed".
func (r *Report) writeCPUPerNotification(w io.Writer, t *ThroughputResult) {
	i := slices.IndexFunc(r.Profiles, func(p Profile) bool { return p.Phase == phaseThroughput })
	if i < 0 || t.Notifications == 0 {
		return
	}
	p, n := r.Profiles[i], float64(t.Notifications)
	server := (p.BackendCPU["notifyd"] + p.BackendCPU["notifyd-listener"]) * 1e6 / n
	producers := p.BackendCPU[producerApp] * 1e6 / n
	process := p.ProcessCPU * 1e6 / n
	total := server + producers + process
	if total <= 0 {
		return
	}
	fmt.Fprintf(w, "   CPU per notification: %.0f µs = server's PostgreSQL backends %.0f (publish and claim) + producers' backends %.0f + this process %.0f (server Go code and client)\n",
		total, server, producers, process)
	fmt.Fprintf(w, "   so %d cores sustain at most about %s/s; the single worker's backend alone at most about %s/s\n",
		r.Environment.Cores, num(float64(r.Environment.Cores)*1e6/total), num(1e6/server))
}

// writeProfiles prints where the CPU went in each phase, then how much
// other work shared the machine and the database server, flagging runs
// whose figures it likely lowered.
func (r *Report) writeProfiles(w io.Writer) {
	if len(r.Profiles) > 0 {
		fmt.Fprintln(w, "\nWhere the CPU went (CPU seconds; PostgreSQL backends from /proc, so only with a local server):")
		writeTable(w, "phase\twall\tthis process (in process: server Go + client; node phases: producers, checks)\tserver backends\tproducer backends\tlistener\tserver backends were running",
			rowsOf(r.Profiles, func(_ int, p Profile) string {
				return fmt.Sprintf("%s\t%.1f s\t%.2f s\t%.2f s\t%.2f s\t%.2f s\t%s", p.Phase, p.Seconds, p.ProcessCPU,
					p.BackendCPU["notifyd"], p.BackendCPU[producerApp], p.BackendCPU["notifyd-listener"], shares(p.ServerStatements))
			})...)
	}
	for _, p := range r.Profiles { // CPU: running; anything else: a wait event or idle
		if ws := p.Waits["notifyd"]; len(ws) > 0 {
			fmt.Fprintf(w, "   %s: the server's backends were %s\n", p.Phase, shares(ws))
		}
	}
	busy := r.Environment.LoadBefore > float64(r.Environment.Cores)
	for _, p := range r.Profiles {
		busy = busy || p.OtherActive > 0.5
	}
	fmt.Fprintf(w, "\nother work: load average %.1f before the bench started; active backends in other databases, mean per phase: %s\n",
		r.Environment.LoadBefore, strings.Join(rowsOf(r.Profiles, func(_ int, p Profile) string {
			return fmt.Sprintf("%s %.1f (max %d)", p.Phase, p.OtherActive, p.OtherMax)
		}), ", "))
	if busy {
		fmt.Fprintln(w, "WARNING: other work shared the machine during this run; its figures are likely low. Rerun on a quiet machine to compare.")
	}
}

func shares(ws []WaitShare) string {
	return strings.Join(rowsOf(ws, func(_ int, s WaitShare) string { return fmt.Sprintf("%s %.0f%%", s.State, s.Percent) }), ", ")
}
