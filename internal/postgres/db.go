// Package postgres is notifyd's only door to PostgreSQL: the connection pool,
// the migrations, and every statement the server runs. It speaks the domain
// types of package notify and translates pgx errors into notify's sentinels,
// so no other package needs to know SQL or pgx.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
)

// PoolConfig tunes the connection pool.
type PoolConfig struct {
	// MaxConns caps the pool. Default 10: the worker, the feed reader and the
	// replays of reconnecting streams share it; the LISTEN connection is extra.
	MaxConns int32
	// ApplicationName shows in pg_stat_activity. Default "notifyd".
	ApplicationName string
	// GenericPlans makes the pool's connections plan each prepared
	// statement once (plan_cache_mode = force_generic_plan), for statements
	// that read index ranges whose shape does not depend on the values: left
	// to choose, PostgreSQL re-plans the audience reads (audience.go) at
	// every call, ~1.4 ms of planning for ~0.2 ms of work, because the
	// generic plan's estimate looks worse. Not for the queue's claim and
	// publish, whose generic plan halves the worker's throughput (measured
	// with notifyd-bench -phases throughput: 13,000/s against 25,400/s).
	GenericPlans bool
	// StatementTimeout, when set, is the statement_timeout of every
	// connection (a startup parameter), so the server itself cancels a
	// statement that runs or waits for a lock longer. Default: none.
	// Not sent when Pooled: callers bound their statements with a context
	// deadline as well, and pgx cancels a statement whose context ends.
	StatementTimeout time.Duration
	// Pooled says the URL reaches PostgreSQL through a transaction-mode
	// pooler (PgBouncer with pool_mode = transaction): each transaction may
	// run on another server connection, and the pooler refuses startup
	// parameters it does not know. So the pool
	//   - prepares no named statements: it runs each statement as the
	//     unnamed one, in the same round trip, with the parameter and result
	//     types pgx learned once per connection (pgx's
	//     QueryExecModeCacheDescribe). pgx's default caches named prepared
	//     statements per client connection, which the pooler's server
	//     connections do not follow ("prepared statement stmtcache_…
	//     already exists" / "does not exist"). A default_query_exec_mode in
	//     the URL still wins.
	//   - sends application_name alone (PgBouncer tracks it): not jit,
	//     plan_cache_mode or statement_timeout, which PgBouncer's default
	//     configuration refuses ("unsupported startup parameter"). jit
	//     belongs to the role then (ALTER ROLE … SET jit = off, which every
	//     server connection the pooler opens applies); GenericPlans has
	//     nothing to act on without named statements.
	Pooled bool
	// AfterConnect, when set, runs on each new connection before the pool
	// hands it out; an error fails the connection. The pools whose
	// connections hand out seqs (the queue workers') set HistoryHook, so
	// that each connection, the ones made after a failover included,
	// checks which history it numbers on before it publishes.
	AfterConnect func(context.Context, *pgx.Conn) error
	// CancelGrace is how long a statement whose context is cancelled (not
	// one whose deadline passed) may run on before pgx breaks its
	// connection, which then closes (cancel.go says why). Default
	// DefaultCancelGrace.
	CancelGrace time.Duration
	// Lazy opens the pool without connecting: for a database notifyd can
	// do without for a while (a read replica, whose reads go to the
	// primary while it is down), so it need not be up when notifyd starts.
	Lazy bool
}

// OpenPool connects a pool and checks that the database answers.
func OpenPool(ctx context.Context, url string, cfg PoolConfig) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pc.MaxConns = 10
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	name := cfg.ApplicationName
	if name == "" {
		name = "notifyd"
	}
	pc.ConnConfig.RuntimeParams["application_name"] = name
	pc.AfterConnect = cfg.AfterConnect
	pc.ConnConfig.BuildContextWatcherHandler = patientCancels(cmp.Or(cfg.CancelGrace, DefaultCancelGrace))
	if cfg.Pooled {
		if _, chosen := runtimeParam(url, "default_query_exec_mode"); !chosen {
			pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		}
		return openPool(ctx, url, pc, cfg.Lazy)
	}
	// JIT compilation pays off for long analytic queries, never for ours:
	// each reads a few index ranges, but on a large table the planner's
	// estimates grow with the table and cross jit_above_cost, and then
	// compiling takes ~25 ms for ~0.2 ms of work (measured with 10 million
	// rows, notifyd-bench -phases lived).
	pc.ConnConfig.RuntimeParams["jit"] = "off"
	if cfg.GenericPlans {
		pc.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	if cfg.StatementTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(cfg.StatementTimeout.Milliseconds(), 1), 10)
	}
	return openPool(ctx, url, pc, cfg.Lazy)
}

func openPool(ctx context.Context, url string, pc *pgxpool.Config, lazy bool) (*pgxpool.Pool, error) {
	pc.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	if lazy {
		return pool, nil
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", Redact(url), err)
	}
	return pool, nil
}

// runtimeParam reads a setting given in the connection string (URL query
// or keyword form), which pgx consumes before the config is returned.
func runtimeParam(url, key string) (string, bool) {
	pc, err := pgconn.ParseConfig(url)
	if err != nil {
		return "", false
	}
	v, ok := pc.RuntimeParams[key]
	return v, ok
}

// BehindPooler reports whether url reaches its PostgreSQL server process
// through a pooler or proxy: the process id a connection announces when it
// opens (its cancel key) is not the one that runs its statements. PgBouncer
// announces a made-up id of its own, in every pool mode. It connects once,
// with no startup parameter but application_name (which PgBouncer's default
// configuration accepts), and queries by the simple protocol, so that it
// leaves no prepared statement behind on a pooled server connection.
func BehindPooler(ctx context.Context, url string) (bool, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false, fmt.Errorf("parse database url: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "notifyd"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", Redact(url), err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var pid int64
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return false, fmt.Errorf("read the server process id through %s: %w", Redact(url), err)
	}
	return pid != int64(conn.PgConn().PID()), nil
}

// Redact returns the connection string without its password, for messages.
// A URL keeps its query parameters but those holding secrets: they say how
// the connection is made (sslmode, say), which a report of figures names.
func Redact(connString string) string {
	pc, err := pgconn.ParseConfig(connString)
	if err != nil {
		return "(unparsable database url)"
	}
	s := fmt.Sprintf("postgres://%s@%s:%d/%s", pc.User, pc.Host, pc.Port, pc.Database)
	if u, err := url.Parse(connString); err == nil && u.RawQuery != "" {
		q := u.Query()
		q.Del("password")
		q.Del("sslpassword")
		if len(q) > 0 {
			s += "?" + q.Encode()
		}
	}
	return s
}

// interpretError maps PostgreSQL errors to the domain's sentinels.
func interpretError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return fmt.Errorf("%w: %s", notify.ErrInvalid, pgErr.Message)
		case "08", "57": // connection exception, operator intervention
			return fmt.Errorf("%w: %s", notify.ErrUnavailable, pgErr.Message)
		}
		return err
	}
	if pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", notify.ErrUnavailable, err)
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return fmt.Errorf("%w: %v", notify.ErrUnavailable, err)
	}
	return err
}
