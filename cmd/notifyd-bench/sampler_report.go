package main

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat CPU times.
const clockTicks = 100

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
		p.BackendCPU[c.app] += float64(c.last-c.base) / clockTicks
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

// statementKinds names the server's statements by how they begin. The
// names are for the report only; an unknown statement shows its start.
var statementKinds = []struct{ prefix, name string }{
	{"WITH mine AS", "publish (stamp seqs)"},
	{"WITH due AS", "claim"},
	{"SELECT r.reason, n.id", "feed read"},
	{"SELECT n.id, COALESCE(n.seq", "replay read"},
	{"SELECT pg_advisory_lock_shared", "mark busy"},
	{"SELECT pg_advisory_unlock_shared", "mark idle"},
	{"SELECT pg_advisory_xact_lock", "mark idle: wait for inserts"},
	{"SELECT min(next_attempt_at)", "next due"},
	{"UPDATE notify.queue_items", "rescue/fail/release"},
}

func statementKind(query string) string {
	q := strings.Join(strings.Fields(query), " ")
	for _, k := range statementKinds {
		if strings.HasPrefix(q, k.prefix) {
			return k.name
		}
	}
	return q[:min(len(q), 40)]
}
