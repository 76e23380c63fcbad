package main

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// sampleQuery lists every client backend of the cluster: this database's
// with their application, state, wait and statement; other databases'
// only to count them as other work.
const sampleQuery = `SELECT pid, datname = current_database(), COALESCE(application_name, ''),
	CASE WHEN state = 'active' THEN COALESCE(wait_event_type || ':' || wait_event, 'CPU')
	     ELSE COALESCE(state, 'unknown') END,
	state = 'active', left(query, 80)
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
	base, last int64 // clock ticks
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
		app = cmpOr(app, "notifyd-listener") // the LISTEN connection sets no name
		if s.states[app] == nil {
			s.states[app] = map[string]int{}
		}
		s.states[app][state]++
		if active && app == "notifyd" {
			s.stmts[statementKind(query)]++
		}
		if ticks, ok := pidTicks(pid); ok {
			p := s.cpu[pid]
			if p == nil {
				p = &pidCPU{app: app}
				if s.first { // seen at the start: count from here; later ones are new backends
					p.base = ticks
				}
				s.cpu[pid] = p
			}
			p.last = ticks
		}
	}
	s.first = false
	s.other.sum, s.other.n, s.other.max = s.other.sum+others, s.other.n+1, max(s.other.max, others)
}

// pidTicks reads a local process's user+system CPU in clock ticks.
func pidTicks(pid int) (int64, bool) {
	d, err := cluster.CPUTime(pid)
	return int64(d / (time.Second / clockTicks)), err == nil
}

// processCPU is this process's user+system CPU time (server and client).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// measurePhase runs fn under a sampler and records its profile in rep.
func measurePhase(ctx context.Context, e *env, rep *Report, phase string, fn func() error) error {
	s := startSampler(ctx, e.admin, 100*time.Millisecond)
	err := fn()
	rep.Profiles = append(rep.Profiles, s.Stop(phase))
	return err
}
