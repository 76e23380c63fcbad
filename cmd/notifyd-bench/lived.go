package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
	"github.com/notifyd/notifyd/internal/wire"
)

// livedWarmup is how many untimed rounds of every operation go first at
// each size: the node's connections, its token keys and the cached pages
// are in place before the clock starts, as on a node that has been up.
const livedWarmup = 10

// runLivedPhase shows what one user's reads cost as the table grows: the
// table is seeded with published history to each of cfg.LivedSizes in
// turn, and at each size one node serves a sparse and a dense user's
// stream openings, resumes, unread counts and history pages over HTTP.
// Every answer is checked against the plan of what the user has.
func (nr *nodeRun) runLivedPhase(ctx context.Context) (*LivedResult, error) {
	cfg, prog := nr.cfg, nr.prog
	sizes := cfg.LivedSizes
	prog.Printf("lived: reads of one user as the table grows to %s rows (%s users, %d roles in the background), %d repetitions per size",
		num(float64(sizes[len(sizes)-1])), num(livedUsers), livedRoles, cfg.LivedReps)
	e, err := nr.startNodes(ctx, 1, map[string]string{
		"NOTIFY_RETENTION": "8760h", // the seeded history goes back 30 days: keep it all
		// Streams open one after another; the node may not have seen the
		// last one's client leave yet.
		"NOTIFY_MAX_STREAMS_PER_USER": "1000",
	})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	plan := newLivedPlan(sizes, cfg.LivedDense)
	seeder := newLivedSeeder(e.admin, plan, sizes[len(sizes)-1], prog)
	res := &LivedResult{}
	prev := int64(0)
	for _, n := range sizes {
		seed, err := e.seed(ctx, seeder, prev, n)
		res.SeedSeconds += seed.InsertSeconds + seed.VacuumSeconds
		if err != nil {
			return res, err
		}
		size, err := measureLived(ctx, e, plan, seed)
		if size != nil {
			res.Sizes = append(res.Sizes, *size)
		}
		if err != nil {
			return res, fmt.Errorf("at %d rows: %w", n, err)
		}
		prev = n
	}
	res.checkLivedTargets()
	if res.ExplainFile, err = writeLivedPlans(res); err != nil {
		return res, err
	}
	prog.Printf("lived: plans written to %s", res.ExplainFile)
	return res, nil
}

// measureLived times every operation at the size just seeded, then
// explains the statements behind them.
func measureLived(ctx context.Context, e *nodeEnv, plan *livedPlan, seed LivedSeed) (*LivedSize, error) {
	cfg, rep := e.run.cfg, e.run.rep
	n := seed.Rows
	sp, de := livedSparseUser(n), livedDenseUser(n)
	spAud, deAud := plan.audience(sp, n), plan.audience(de, n)
	if len(spAud) != livedSparseTotal || len(deAud) <= livedResumeBehind {
		return nil, fmt.Errorf("plan: sparse user has %d notifications, dense %d", len(spAud), len(deAud))
	}
	upTo, read, unread := livedReadState(deAud)
	from := deAud[len(deAud)-livedResumeBehind-1]
	size := &LivedSize{Rows: n, Seed: seed,
		Sparse: LivedUser{UserID: sp.UserID, Roles: sp.Roles, Notifications: len(spAud)},
		Dense: LivedUser{UserID: de.UserID, Roles: de.Roles, Notifications: len(deAud), ResumeFrom: from,
			ReadUpTo: upTo, ReadMarks: len(read) + len(unread)}}
	spc, err := newLivedClient(e, sp)
	if err != nil {
		return nil, err
	}
	dec, err := newLivedClient(e, de)
	if err != nil {
		return nil, err
	}
	ops := map[string]func(ctx context.Context) error{
		"open_sparse":    func(ctx context.Context) error { return spc.open(ctx, livedSparseTotal, false) },
		"open_dense":     func(ctx context.Context) error { return dec.open(ctx, 0, true) },
		"resume_sparse":  func(ctx context.Context) error { return spc.resume(ctx, 0, spAud) },
		"resume_dense":   func(ctx context.Context) error { return dec.resume(ctx, from, deAud[len(deAud)-livedResumeBehind:]) },
		"unread_sparse":  func(ctx context.Context) error { return spc.unread(ctx, livedSparseTotal, false) },
		"unread_dense":   func(ctx context.Context) error { return dec.unread(ctx, 0, true) },
		"history_sparse": func(ctx context.Context) error { return spc.history(ctx, newest(spAud, 20)) },
		"history_dense":  func(ctx context.Context) error { return dec.history(ctx, newest(deAud, 20)) },
	}
	samp := startSampler(ctx, e.admin, 100*time.Millisecond)
	times, err := timeOps(ctx, ops, livedWarmup, cfg.LivedReps)
	rep.Profiles = append(rep.Profiles, samp.Stop("lived "+num(float64(n))))
	if err != nil {
		return size, err
	}
	size.Ops = map[string]stats.Summary{}
	for k, v := range times {
		size.Ops[k] = stats.Summarize(v)
	}
	size.Explains = map[string][]LivedPlan{}
	err = explainUser(ctx, e, sp, 0, size.Explains, func(stmt string) string { return "sparse " + stmt })
	if err == nil {
		err = explainUser(ctx, e, de, from, size.Explains, func(stmt string) string { return "dense " + stmt })
	}
	return size, err
}

// newest is the last k of seqs, newest first.
func newest(seqs []int64, k int) []int64 {
	out := slices.Clone(seqs[max(0, len(seqs)-k):])
	slices.Reverse(out)
	return out
}

// LivedResult is the lived phase: one user's reads as the table grows.
type LivedResult struct {
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
	Label    string  `json:"-"`
	P99Ms    float64 `json:"p99_ms"`
	LimitMs  float64 `json:"limit_ms"`
	FirstP99 float64 `json:"first_size_p99_ms"`
	Ratio    float64 `json:"ratio"`
	MaxRatio float64 `json:"max_ratio"`
	Met      bool    `json:"met"`
}

// livedOps are the operations in the report's order, with their labels
// and the targets at the largest size: p99 at most LimitMs (0:
// none), and at most livedMaxRatio times its p99 at the first size.
type livedOp struct {
	Key, Label string
	LimitMs    float64
}

var livedOps = []livedOp{
	{"open_sparse", "stream open → connected, sparse", 10},
	{"open_dense", "stream open → connected, dense", 10},
	{"resume_sparse", "sparse resume from 0 → all 20", 10},
	{"resume_dense", "dense resume 500 behind → all 500", 0},
	{"unread_sparse", "unread count, sparse", 5},
	{"unread_dense", "unread count, dense", 5},
	{"history_sparse", "history page (limit 20), sparse", 0},
	{"history_dense", "history page (limit 20), dense", 0},
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
	for _, t := range livedOps {
		if t.LimitMs == 0 {
			continue
		}
		c := LivedTargetCheck{Op: t.Key, Label: t.Label, P99Ms: last.Ops[t.Key].P99Ms, LimitMs: t.LimitMs,
			FirstP99: first.Ops[t.Key].P99Ms, MaxRatio: livedMaxRatio}
		c.Ratio = ratio(c.P99Ms, c.FirstP99)
		c.Met = c.P99Ms <= c.LimitMs && c.Ratio <= c.MaxRatio
		r.TargetMet = r.TargetMet && c.Met
		r.Targets = append(r.Targets, c)
	}
}

// write prints the lived phase: how the table was seeded, each
// operation's p50/p99 at every size with the ratio of the largest size to
// the first, the targets, and the buffers the sparse user's statements
// touched.
func (l *LivedResult) write(w io.Writer, r *Report) {
	if len(l.Sizes) == 0 {
		return
	}
	first, last := l.Sizes[0], l.Sizes[len(l.Sizes)-1]
	fmt.Fprintf(w, "\n8. Long-lived table: one user's reads as notify.notifications grows (background: %s users, %d roles; 70%% of rows to one user, 30%% to one or two roles; %d broadcasts per size)\n",
		num(livedUsers), livedRoles, livedBroadcastsPerSize)
	fmt.Fprintf(w, "   seeding: INSERT ... SELECT FROM generate_series, %s rows per transaction, triggers off, then VACUUM (ANALYZE); %.0f s in all\n",
		num(livedChunk), l.SeedSeconds)
	writeTable(w, "rows\tadded\tinserts\trows/s\tvacuum\tnotifications\tqueue_items\tnotification_roles", rowsOf(l.Sizes, func(_ int, s LivedSize) string {
		return fmt.Sprintf("%s\t%s\t%.1f s\t%s\t%.1f s\t%.0f MiB\t%.0f MiB\t%.0f MiB", num(float64(s.Rows)), num(float64(s.Seed.Added)),
			s.Seed.InsertSeconds, num(s.Seed.RowsPerSecond), s.Seed.VacuumSeconds,
			mib(s.Seed.NotificationsBytes), mib(s.Seed.QueueItemsBytes), mib(s.Seed.RolesBytes))
	})...)
	fmt.Fprintf(w, "   users of each size N: sparse-N, %d notifications (direct, by a role only it holds, broadcasts) spread over seqs 1..N;\n", livedSparseTotal)
	fmt.Fprintf(w, "   dense-N, %s (direct, by its two roles, broadcasts), read up to the middle, %d read marks, resuming from %d behind\n",
		num(float64(last.Dense.Notifications)), last.Dense.ReadMarks, livedResumeBehind)
	fmt.Fprintf(w, "   p50 / p99 in ms over %d repetitions per size, operations interleaved; ratio: the figure at %s rows over the one at %s rows\n",
		r.cfg.LivedReps, num(float64(last.Rows)), num(float64(first.Rows)))
	writeTable(w, "operation\t"+strings.Join(rowsOf(l.Sizes, func(_ int, s LivedSize) string { return num(float64(s.Rows)) + " rows" }), "\t")+"\tratio p50\tratio p99",
		rowsOf(livedOps, func(_ int, op livedOp) string {
			return op.Label + "\t" + strings.Join(rowsOf(l.Sizes, func(_ int, s LivedSize) string {
				return fmt.Sprintf("%.2f / %.2f", s.Ops[op.Key].P50Ms, s.Ops[op.Key].P99Ms)
			}), "\t") + fmt.Sprintf("\t%.2f×\t%.2f×", ratio(last.Ops[op.Key].P50Ms, first.Ops[op.Key].P50Ms), ratio(last.Ops[op.Key].P99Ms, first.Ops[op.Key].P99Ms))
		})...)
	fmt.Fprintf(w, "   targets at %s rows: p99 within its limit and within %.1f× of its p99 at %s rows:\n",
		num(float64(last.Rows)), livedMaxRatio, num(float64(first.Rows)))
	for _, t := range l.Targets {
		fmt.Fprintf(w, "     %-34s p99 %.2f ms (limit %.0f ms), %.2f× (limit %.1f×): %s\n",
			t.Label, t.P99Ms, t.LimitMs, t.Ratio, t.MaxRatio, verdict(t.Met))
	}
	fmt.Fprintln(w, "   EXPLAIN (ANALYZE, BUFFERS) of the sparse user's statements: shared buffers hit+read at the root, execution+planning time;")
	fmt.Fprintln(w, "   custom plan (what each node connection runs for a statement's first 5 executions) / the plan the plan cache runs after them:")
	writeTable(w, "rows\treplay from 0\tunread count\thistory page", rowsOf(l.Sizes, func(_ int, s LivedSize) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s", num(float64(s.Rows)), planCell(s.Explains["sparse replay"]), planCell(s.Explains["sparse unread"]),
			planCell(s.Explains["sparse history"]))
	})...)
	if l.ExplainFile != "" {
		fmt.Fprintf(w, "   every plan (sparse and dense, every size): %s\n", l.ExplainFile)
	}
}

// planCell is "custom / auto" buffers and times, auto marked when generic.
func planCell(ps []LivedPlan) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%d+%d, %.2f+%.2f ms", p.SharedHit, p.SharedRead, p.ExecMs, p.PlanMs)
		if p.JITMs > 0 {
			parts[i] += fmt.Sprintf(" (JIT %.1f ms)", p.JITMs)
		}
		if p.Generic {
			parts[i] += " (generic)"
		}
	}
	return strings.Join(parts, " / ")
}

// writeLivedPlans writes every plan of the run to a new file in the
// temporary directory and returns its path.
func writeLivedPlans(l *LivedResult) (string, error) {
	f, err := os.CreateTemp("", "notifyd-bench-lived-*.txt")
	if err != nil {
		return "", fmt.Errorf("explain file: %w", err)
	}
	defer f.Close()
	for _, s := range l.Sizes {
		for _, key := range []string{"sparse replay", "sparse unread", "sparse history", "dense replay", "dense unread", "dense history"} {
			for _, p := range s.Explains[key] {
				fmt.Fprintf(f, "==== %s rows: %s, %s plan (generic: %v)\n%s\n\n", num(float64(s.Rows)), key, p.Mode, p.Generic, p.Text)
			}
		}
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("explain file: %w", err)
	}
	return f.Name(), nil
}

// livedClient is one user's side of the operations the lived phase times:
// real HTTP against the node, each answer checked against what the plan
// says the user has, so a fast wrong answer cannot pass for a fast one.
type livedClient struct {
	http  *http.Client
	base  string
	token string
}

func newLivedClient(e *nodeEnv, id notify.Identity) (livedClient, error) {
	tok, err := e.run.token(id.UserID, id.Roles...)
	return livedClient{http: e.http, base: e.nodes[0].URL(), token: tok}, err
}

func (c livedClient) header() http.Header { return http.Header{"Authorization": {"Bearer " + c.token}} }

// open opens a new stream (no resume) and reads until the connected
// message, which carries the unread count: want it, or want more than
// UnreadCap when wantMore.
func (c livedClient) open(ctx context.Context, want int, wantMore bool) error {
	s, err := wire.Open(ctx, c.http, c.base+cluster.StreamPath, c.header())
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			return fmt.Errorf("before connected: %w", err)
		}
		m, err := wire.Decode(ev)
		if err != nil {
			return err
		}
		if m.Type != wire.TypeConnected {
			continue
		}
		d, err := m.Connected()
		if err != nil {
			return err
		}
		count, more := d.UnreadCount, d.HasMore != nil && *d.HasMore
		if count == nil || !count.Known || (!wantMore && count.N != want) || more != wantMore {
			return fmt.Errorf("connected with unread count %s", ev.Data)
		}
		return nil
	}
}

// resume opens a stream with Last-Event-ID from and reads until it has
// the notifications in want, which must be exactly the ones that come.
func (c livedClient) resume(ctx context.Context, from int64, want []int64) error {
	got, err := replay(ctx, c.http, c.base, c.header(), from, len(want), nil)
	if err == nil && !slices.Equal(got, want) {
		err = fmt.Errorf("replayed %v, want %v", got, want)
	}
	return err
}

// replay opens a stream on the node at base with Last-Event-ID from and
// returns the seqs of its first n notifications; read, when not nil, is
// told each one's count as it arrives (so a caller can time the first and
// the last before the stream closes).
func replay(ctx context.Context, client *http.Client, base string, h http.Header, from int64, n int, read func(count int)) ([]int64, error) {
	h.Set("Last-Event-ID", strconv.FormatInt(from, 10))
	s, err := wire.Open(ctx, client, base+cluster.StreamPath, h)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	got := make([]int64, 0, n)
	for len(got) < n {
		ev, err := s.Next()
		if err != nil {
			return got, fmt.Errorf("after %d of %d notifications: %w", len(got), n, err)
		}
		if ev.ID == "" {
			continue
		}
		seq, err := strconv.ParseInt(ev.ID, 10, 64)
		if err != nil {
			return got, fmt.Errorf("event id %q", ev.ID)
		}
		if got = append(got, seq); read != nil {
			read(len(got))
		}
	}
	return got, nil
}

// unread checks the unread count: want, or more than UnreadCap when wantMore.
func (c livedClient) unread(ctx context.Context, want int, wantMore bool) error {
	var u struct {
		Count   int  `json:"count"`
		HasMore bool `json:"hasMore"`
	}
	if err := doJSON(ctx, c.http, http.MethodGet, c.base+"/api/notifications/unread-count", c.header(), nil, http.StatusOK, &u); err != nil {
		return err
	}
	if u.HasMore != wantMore || (!wantMore && u.Count != want) {
		return fmt.Errorf("unread count %d (more: %v), want %d (more: %v)", u.Count, u.HasMore, want, wantMore)
	}
	return nil
}

// history checks the first history page: the newest 20, newest first.
func (c livedClient) history(ctx context.Context, want []int64) error {
	var page struct {
		Notifications []struct {
			Seq int64 `json:"seq"`
		} `json:"notifications"`
	}
	if err := doJSON(ctx, c.http, http.MethodGet, c.base+"/api/notifications?limit=20", c.header(), nil, http.StatusOK, &page); err != nil {
		return err
	}
	got := make([]int64, len(page.Notifications))
	for i, n := range page.Notifications {
		got[i] = n.Seq
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("history page %v, want %v", got, want)
	}
	return nil
}

// timeOps runs warmup untimed rounds, then reps timed ones, of every
// operation (by livedOps); each round starts one operation further
// along, so none always follows the same other one. Any failed check ends
// the run.
func timeOps(ctx context.Context, run map[string]func(context.Context) error, warmup, reps int) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	for rep := -warmup; rep < reps; rep++ {
		for j := range livedOps {
			op := livedOps[(rep+warmup+j)%len(livedOps)]
			octx, cancel := context.WithTimeout(ctx, 30*time.Second)
			start := time.Now()
			err := run[op.Key](octx)
			took := time.Since(start)
			cancel()
			if err != nil {
				return out, fmt.Errorf("%s: %w", op.Label, err)
			}
			if rep >= 0 {
				out[op.Key] = append(out[op.Key], took)
			}
		}
	}
	return out, nil
}

// The statements explained are the server's own, not copies: the bench
// calls the same stores (internal/postgres) on a pool whose tracer keeps
// each statement's text and arguments, then explains those.

// capturedQuery is one statement a store ran.
type capturedQuery struct {
	SQL  string
	Args []any
}

// captureTracer records the statements run on its pool.
type captureTracer struct {
	mu   sync.Mutex
	last []capturedQuery
}

var _ pgx.QueryTracer = (*captureTracer)(nil)

func (t *captureTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = append(t.last, capturedQuery{SQL: d.SQL, Args: d.Args})
	return ctx
}

func (t *captureTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements recorded since the last take.
func (t *captureTracer) take() []capturedQuery {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.last
	t.last = nil
	return q
}

// livedStatements runs, for id, the replay's first page after `after` (as
// a stream's resume reads it), the unread count and the first history
// page, and returns each statement by name.
func livedStatements(ctx context.Context, dbURL string, id notify.Identity, after int64) (map[string]capturedQuery, error) {
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	tr := &captureTracer{}
	pc.ConnConfig.Tracer, pc.MaxConns = tr, 1
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open capture pool: %w", err)
	}
	defer pool.Close()
	out := map[string]capturedQuery{}
	keep := func(name string, err error) error {
		qs := tr.take()
		if err != nil {
			return fmt.Errorf("%s for %s: %w", name, id.UserID, err)
		}
		if len(qs) != 1 {
			return fmt.Errorf("%s for %s ran %d statements, want 1", name, id.UserID, len(qs))
		}
		out[name] = qs[0]
		return nil
	}
	_, err = postgres.NewNotifications(pool).Replay(ctx, id, after, math.MaxInt64, stream.Config{}.WithDefaults().ReplayPage)
	if err := keep("replay", err); err != nil {
		return nil, err
	}
	inbox := postgres.NewInbox(pool)
	_, err = inbox.Unread(ctx, id)
	if err := keep("unread", err); err != nil {
		return nil, err
	}
	_, _, err = inbox.History(ctx, id, postgres.HistoryQuery{Limit: 20})
	if err := keep("history", err); err != nil {
		return nil, err
	}
	return out, nil
}

// explainUser explains id's statements (livedStatements) in their custom
// and their cached plan, into out under key(statement).
func explainUser(ctx context.Context, e *nodeEnv, id notify.Identity, after int64, out map[string][]LivedPlan, key func(stmt string) string) error {
	stmts, err := livedStatements(ctx, e.db.URL, id, after)
	if err != nil {
		return err
	}
	for name, q := range stmts {
		custom, auto, err := explainPlans(ctx, e.admin, q)
		if err != nil {
			return fmt.Errorf("explain %s for %s: %w", name, id.UserID, err)
		}
		out[key(name)] = []LivedPlan{custom, auto}
	}
	return nil
}

// explainPlans explains q twice on one connection, as a prepared
// statement like the node's (pgx prepares and caches each statement per
// connection): with a custom plan for these arguments, and with the plan
// PostgreSQL settles on after five executions (plan_cache_mode auto), which
// is what a node's long-lived connections run from then on; that one may
// be generic.
func explainPlans(ctx context.Context, pool *pgxpool.Pool, q capturedQuery) (custom, auto LivedPlan, err error) {
	args := make([]string, len(q.Args))
	for i, a := range q.Args {
		if args[i], err = sqlLiteral(a); err != nil {
			return custom, auto, err
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return custom, auto, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "PREPARE lived_explain AS "+q.SQL); err != nil {
		return custom, auto, fmt.Errorf("prepare: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DEALLOCATE lived_explain")
	exec := "EXECUTE lived_explain(" + strings.Join(args, ", ") + ")"
	// explain runs first, then explains the statement as mode.
	explain := func(mode string, first ...string) (LivedPlan, error) {
		for _, stmt := range first {
			if _, err := conn.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
				return LivedPlan{}, err
			}
		}
		rows, _ := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+exec, pgx.QueryExecModeSimpleProtocol)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return LivedPlan{}, fmt.Errorf("explain: %w", err)
		}
		return parsePlan(mode, strings.Join(lines, "\n"), args[0]), nil
	}
	if custom, err = explain("custom", "SET plan_cache_mode = force_custom_plan"); err != nil {
		return custom, auto, err
	}
	auto, err = explain("auto", "RESET plan_cache_mode", exec, exec, exec, exec, exec)
	return custom, auto, err
}

var (
	buffersLine = regexp.MustCompile(`Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?`)
	execTime    = regexp.MustCompile(`Execution Time: ([0-9.]+) ms`)
	planTime    = regexp.MustCompile(`Planning Time: ([0-9.]+) ms`)
	jitTime     = regexp.MustCompile(`JIT:\n(?:.*\n)*?\s*Timing: .*Total ([0-9.]+) ms`)
)

// parsePlan reads the root node's buffers (the first Buffers line: a
// node's details come before its children's), the execution and the
// planning time (a custom plan is planned at every execution), and the
// time spent compiling it (JIT, past jit_above_cost, within execution). A
// plan that does not show the first argument (the user id, as a literal)
// is generic: planned without the arguments.
func parsePlan(mode, text, firstArg string) LivedPlan {
	p := LivedPlan{Mode: mode, Text: text, Generic: !strings.Contains(text, firstArg)}
	if m := buffersLine.FindStringSubmatch(text); m != nil {
		p.SharedHit, _ = strconv.ParseInt(m[1], 10, 64)
		p.SharedRead, _ = strconv.ParseInt(m[2], 10, 64)
	}
	if m := execTime.FindStringSubmatch(text); m != nil {
		p.ExecMs, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := planTime.FindStringSubmatch(text); m != nil {
		p.PlanMs, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := jitTime.FindStringSubmatch(text); m != nil {
		p.JITMs, _ = strconv.ParseFloat(m[1], 64)
	}
	return p
}

// sqlLiteral writes an argument the stores pass as an SQL literal.
func sqlLiteral(a any) (string, error) {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := a.(type) {
	case string:
		return quote(v), nil
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i] = quote(s)
		}
		return "ARRAY[" + strings.Join(parts, ", ") + "]::text[]", nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("explain: no literal for an argument of type %T", a)
}
