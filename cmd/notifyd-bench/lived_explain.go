package main

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/stream"
)

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
	exec := "EXECUTE lived_explain(" + strings.Join(args, ", ") + ")"
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return custom, auto, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "PREPARE lived_explain AS "+q.SQL); err != nil {
		return custom, auto, fmt.Errorf("prepare: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DEALLOCATE lived_explain")
	explain := func(mode string) (LivedPlan, error) {
		var lines []string
		rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+exec, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return LivedPlan{}, err
		}
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return LivedPlan{}, fmt.Errorf("explain: %w", err)
		}
		return parsePlan(mode, strings.Join(lines, "\n"), args[0]), nil
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_custom_plan"); err != nil {
		return custom, auto, err
	}
	custom, err = explain("custom")
	if err != nil {
		return custom, auto, err
	}
	if _, err := conn.Exec(ctx, "RESET plan_cache_mode"); err != nil {
		return custom, auto, err
	}
	for range 5 {
		if _, err := conn.Exec(ctx, exec, pgx.QueryExecModeSimpleProtocol); err != nil {
			return custom, auto, err
		}
	}
	auto, err = explain("auto")
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
