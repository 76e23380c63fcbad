// Package postgres is notifyd's only door to PostgreSQL: the connection pool,
// the migrations, and every statement the server runs. It speaks the domain
// types of package notify and translates pgx errors into notify's sentinels,
// so no other package needs to know SQL or pgx.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

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
	StatementTimeout time.Duration
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
	pc.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", Redact(url), err)
	}
	return pool, nil
}

// Redact returns the connection string without its password, for messages.
func Redact(url string) string {
	pc, err := pgconn.ParseConfig(url)
	if err != nil {
		return "(unparsable database url)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", pc.User, pc.Host, pc.Port, pc.Database)
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
