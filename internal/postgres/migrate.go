package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/notifyd/notifyd/migrations"
)

// migrationsTable is where goose records the applied versions. It lives in
// public, not in schema notify, because the first migration creates notify and
// the last down-migration drops it.
const migrationsTable = "notify_migrations"

// Migrator applies the embedded migrations. Several nodes starting at once
// are safe: goose holds a session advisory lock while it migrates.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// NewMigrator builds a migrator over the pool's database.
func NewMigrator(pool *pgxpool.Pool, logger *slog.Logger) (*Migrator, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("create migration lock: %w", err)
	}
	return newMigrator(pool, logger, goose.WithSessionLocker(locker))
}

// NewSchemaReader builds a migrator for reading the schema's state only
// (Status, Pending), as readiness does every few seconds. It takes no lock:
// goose's session lock would make each read wait for a node that is
// migrating, and through a transaction pooler (PgBouncer) its unlock lands
// on another server connection and goose retries it for a minute. Do not
// Up or Down with it.
func NewSchemaReader(pool *pgxpool.Pool) (*Migrator, error) {
	return newMigrator(pool, nil)
}

func newMigrator(pool *pgxpool.Pool, logger *slog.Logger, extra ...goose.ProviderOption) (*Migrator, error) {
	db := stdlib.OpenDBFromPool(pool)
	opts := append([]goose.ProviderOption{goose.WithTableName(migrationsTable)}, extra...)
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, opts...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// Close releases the migrator's database handle (not the pool).
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration and returns the versions applied.
func (m *Migrator) Up(ctx context.Context) ([]int64, error) {
	res, err := m.provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	versions := make([]int64, 0, len(res))
	for _, r := range res {
		versions = append(versions, r.Source.Version)
	}
	return versions, nil
}

// Down rolls back the most recent migration and returns its version.
func (m *Migrator) Down(ctx context.Context) (int64, error) {
	res, err := m.provider.Down(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate down: %w", err)
	}
	return res.Source.Version, nil
}

// MigrationState is one migration and whether it is applied.
type MigrationState struct {
	Version int64
	Name    string
	Applied bool
}

// Status lists every known migration with its state.
func (m *Migrator) Status(ctx context.Context) ([]MigrationState, error) {
	sts, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]MigrationState, 0, len(sts))
	for _, s := range sts {
		out = append(out, MigrationState{Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	return out, nil
}

// Pending reports whether some migration has not been applied.
func (m *Migrator) Pending(ctx context.Context) (bool, error) {
	ok, err := m.provider.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check pending migrations: %w", err)
	}
	return ok, nil
}
