package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/postgres"
)

// authTimeoutMargin is added to the statement timeout for the deadline of a
// whole sign-in or session operation, so that normally PostgreSQL cancels
// the statement first and the connection survives; the deadline still
// bounds waiting for one of the pool's few connections.
const authTimeoutMargin = 250 * time.Millisecond

// openAuthPool opens the small pool that sign-ins and session cookie
// look-ups use. They run for unauthenticated requests, so they get
// connections of their own (Config.AuthPoolSize) with a statement_timeout
// (Config.AuthStatementTimeout): a flood of them, or a stall on
// notify.sessions, answers 503 quickly instead of taking the connections the
// worker, the feed and the streams' replays need.
//
// Through a transaction pooler (pooled) the statement_timeout cannot be a
// startup parameter (postgres.PoolConfig.Pooled); each operation's context
// deadline (AuthStatementTimeout plus authTimeoutMargin) still bounds it, and
// pgx cancels the statement when it passes, which PgBouncer forwards.
func openAuthPool(ctx context.Context, cfg Config, pooled bool) (*pgxpool.Pool, error) {
	pool, err := postgres.OpenPool(ctx, cfg.DatabaseURL, postgres.PoolConfig{MaxConns: cfg.AuthPoolSize,
		ApplicationName: "notifyd-auth", StatementTimeout: cfg.AuthStatementTimeout, Pooled: pooled})
	if err != nil {
		return nil, fmt.Errorf("sign-in pool: %w", err)
	}
	return pool, nil
}
