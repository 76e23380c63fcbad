package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/postgres"
)

// session is what a one-shot database command (send, status, retry, tail
// --db) works with: its logger, the resolved database and a small pool.
type session struct {
	log  *slog.Logger
	db   localdb.Database
	pool *pgxpool.Pool
}

// openSession resolves DATABASE_URL (or the local default) and connects.
// Close it when done.
func openSession(ctx context.Context, c *common, stderr io.Writer, name string) (*session, error) {
	log, db, err := c.open(ctx, stderr)
	if err != nil {
		return nil, err
	}
	// DATABASE_URL may be PgBouncer in transaction mode, which refuses
	// startup parameters and loses named prepared statements between
	// transactions: a pool that does without them works through any pooler.
	pooled, err := postgres.BehindPooler(ctx, db.URL)
	if err != nil {
		_ = db.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w\n(check DATABASE_URL or --database-url)", err)
	}
	pool, err := postgres.OpenPool(ctx, db.URL, postgres.PoolConfig{MaxConns: 2, ApplicationName: "notifyd-" + name, Pooled: pooled})
	if err != nil {
		_ = db.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w\n(check DATABASE_URL or --database-url)", err)
	}
	return &session{log: log, db: db, pool: pool}, nil
}

func (s *session) Close(ctx context.Context) {
	s.pool.Close()
	_ = s.db.Close(context.WithoutCancel(ctx))
}

// explainDB adds what to do next to database errors people can fix.
func explainDB(err error) error {
	if err != nil && postgres.IsSchemaMissing(err) {
		return fmt.Errorf("%w\nthe database has no notifyd schema yet: run `notifyd migrate up` (or start `notifyd serve`, which migrates)", err)
	}
	return err
}

// quietByDefault makes warn the default log level of a one-shot command:
// its output is the answer, and info lines such as which database was chosen
// would be noise on every run. NOTIFY_LOG_LEVEL or --log-level still decide.
func quietByDefault(s *settings, c *common) {
	if s.env("NOTIFY_LOG_LEVEL") != "" {
		return
	}
	c.logLevel = "warn"
	if f := s.fs.Lookup("log-level"); f != nil {
		f.DefValue = "warn"
	}
}
