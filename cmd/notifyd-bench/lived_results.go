package main

import "github.com/notifyd/notifyd/internal/testkit/stats"

// LivedResult is the lived phase: one user's reads as the table grows.
type LivedResult struct {
	Users       int                `json:"background_users"`
	Roles       int                `json:"background_roles"`
	Reps        int                `json:"reps"`
	SeedSeconds float64            `json:"seed_seconds"` // inserts and vacuums of every size
	ExplainFile string             `json:"explain_file,omitempty"`
	Sizes       []LivedSize        `json:"sizes"`
	Targets     []LivedTargetCheck `json:"targets"`
	TargetMet   bool               `json:"target_met"`
}

// LivedSeed is how one size was reached.
type LivedSeed struct {
	Rows               int64   `json:"rows"`
	Added              int64   `json:"added"`
	InsertSeconds      float64 `json:"insert_seconds"`
	RowsPerSecond      float64 `json:"rows_per_second"`
	VacuumSeconds      float64 `json:"vacuum_seconds"`      // VACUUM (ANALYZE) of the tables
	NotificationsBytes int64   `json:"notifications_bytes"` // with indexes and TOAST
	QueueItemsBytes    int64   `json:"queue_items_bytes"`
	RolesBytes         int64   `json:"notification_roles_bytes"`
}

// LivedSize is everything measured at one table size.
type LivedSize struct {
	Rows   int64     `json:"rows"`
	Seed   LivedSeed `json:"seed"`
	Sparse LivedUser `json:"sparse"`
	Dense  LivedUser `json:"dense"`
	// Ops is p50/p99 (and the rest) of each operation, by key.
	Ops map[string]stats.Summary `json:"ops"`
	// Explains are the sparse and the dense user's statements, by
	// "user statement" (e.g. "sparse replay").
	Explains map[string][]LivedPlan `json:"explains"`
}

// LivedUser is a measured user and its notifications at one size.
type LivedUser struct {
	UserID        string   `json:"user_id"`
	Roles         []string `json:"roles"`
	Notifications int      `json:"notifications"` // broadcasts included
	ResumeFrom    int64    `json:"resume_from"`
	ReadUpTo      int64    `json:"read_up_to,omitempty"`
	ReadMarks     int      `json:"read_marks,omitempty"`
}

// LivedPlan is one EXPLAIN (ANALYZE, BUFFERS) of a statement.
type LivedPlan struct {
	// Mode is custom (planned for the arguments) or auto (what the plan
	// cache runs after five executions); Generic says the plan ignored them.
	Mode       string  `json:"mode"`
	Generic    bool    `json:"generic"`
	SharedHit  int64   `json:"shared_hit"`
	SharedRead int64   `json:"shared_read"`
	ExecMs     float64 `json:"execution_ms"`
	PlanMs     float64 `json:"planning_ms"` // near 0 for a cached generic plan
	// JITMs is the part of ExecMs spent compiling the plan: PostgreSQL
	// compiles plans whose estimated cost passes jit_above_cost.
	JITMs float64 `json:"jit_ms,omitempty"`
	Text  string  `json:"plan"`
}

// LivedTargetCheck is one target of the issue at the largest size.
type LivedTargetCheck struct {
	Op       string  `json:"op"`
	P99Ms    float64 `json:"p99_ms"`
	LimitMs  float64 `json:"limit_ms"`
	FirstP99 float64 `json:"first_size_p99_ms"`
	Ratio    float64 `json:"ratio"`
	MaxRatio float64 `json:"max_ratio"`
	Met      bool    `json:"met"`
}

// livedOpKeys are the operations in the report's order, with their labels.
var livedOpKeys = []struct{ Key, Label string }{
	{"open_sparse", "stream open → connected, sparse"},
	{"open_dense", "stream open → connected, dense"},
	{"resume_sparse", "sparse resume from 0 → all 20"},
	{"resume_dense", "dense resume 500 behind → all 500"},
	{"unread_sparse", "unread count, sparse"},
	{"unread_dense", "unread count, dense"},
	{"history_sparse", "history page (limit 20), sparse"},
	{"history_dense", "history page (limit 20), dense"},
}

// livedTargets are the targets at the largest size: p99 at most
// LimitMs, and at most livedMaxRatio times its p99 at the first size.
var livedTargets = []struct {
	Key     string
	LimitMs float64
}{
	{"open_sparse", 10}, {"open_dense", 10}, {"resume_sparse", 10}, {"unread_sparse", 5}, {"unread_dense", 5},
}

const livedMaxRatio = 1.5

// checkLivedTargets fills in r.Targets and r.TargetMet from the first and
// the last size.
func (r *LivedResult) checkLivedTargets() {
	if len(r.Sizes) == 0 {
		return
	}
	first, last := r.Sizes[0], r.Sizes[len(r.Sizes)-1]
	r.TargetMet = true
	r.Targets = nil
	for _, t := range livedTargets {
		c := LivedTargetCheck{Op: t.Key, P99Ms: last.Ops[t.Key].P99Ms, LimitMs: t.LimitMs,
			FirstP99: first.Ops[t.Key].P99Ms, MaxRatio: livedMaxRatio}
		c.Ratio = ratio(c.P99Ms, c.FirstP99)
		c.Met = c.P99Ms <= c.LimitMs && c.Ratio <= c.MaxRatio
		r.TargetMet = r.TargetMet && c.Met
		r.Targets = append(r.Targets, c)
	}
}

// ratio is a/b, 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
