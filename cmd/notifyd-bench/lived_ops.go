package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
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
	"github.com/notifyd/notifyd/internal/wire"
)

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
// operation (by livedOpKeys); each round starts one operation further
// along, so none always follows the same other one. Any failed check ends
// the run.
func timeOps(ctx context.Context, run map[string]func(context.Context) error, warmup, reps int) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	for rep := -warmup; rep < reps; rep++ {
		for j := range livedOpKeys {
			op := livedOpKeys[(rep+warmup+j)%len(livedOpKeys)]
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
