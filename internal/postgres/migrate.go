package postgres

import (
	"context"
	"database/sql"
	"errors"
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
// its down-migration drops it.
const migrationsTable = "notify_schema_migrations"

// InitialMigration is the version of the migration that creates schema
// notify: a start that applied it made a new database.
const InitialMigration = 1

// preResetTable is where goose recorded versions before issue 16 folded the
// twelve pre-release migrations into one initial migration. Its versions
// number another history: 00002 there is not 00002 here, so a database that
// has it is refused rather than read with the new numbering (which would
// skip the next migration as "applied").
const preResetTable = "notify_migrations"

// preResetLast is the last pre-reset version (00012_session_refresh.sql). A
// database at it has exactly the schema of 00001_initial.sql (their
// pg_dump --schema-only outputs are identical), so it may keep its data by
// renumbering its goose table.
const preResetLast = 12

// ErrPreResetSchema says the database was migrated by a notifyd from before
// the migrations were reset. Nothing was released, so there is no automatic
// upgrade: the error says what to run by hand.
var ErrPreResetSchema = errors.New("the database was migrated by a pre-release notifyd whose migrations were since folded into one")

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

// checkNotPreReset fails with ErrPreResetSchema when the database has the
// goose table of the migrations from before the reset.
func (m *Migrator) checkNotPreReset(ctx context.Context) error {
	var found bool
	if err := m.db.QueryRowContext(ctx, `SELECT to_regclass('public.`+preResetTable+`') IS NOT NULL`).Scan(&found); err != nil {
		return fmt.Errorf("look for pre-reset migrations: %w", err)
	}
	if !found {
		return nil
	}
	var version sql.NullInt64
	if err := m.db.QueryRowContext(ctx, `SELECT max(version_id) FROM public.`+preResetTable).Scan(&version); err != nil {
		return fmt.Errorf("read pre-reset migrations: %w", err)
	}
	if version.Int64 == preResetLast {
		return fmt.Errorf("%w (table public.%s, version %d, whose schema is the initial migration's): keep the data with "+
			"ALTER TABLE public.%[2]s RENAME TO %[4]s; DELETE FROM public.%[4]s WHERE version_id > 1; then run `notifyd migrate up`",
			ErrPreResetSchema, preResetTable, version.Int64, migrationsTable)
	}
	return fmt.Errorf("%w (table public.%s, version %d): recreate the schema, which deletes its data: "+
		"DROP SCHEMA notify CASCADE; DROP TABLE public.%[2]s; then run `notifyd migrate up`",
		ErrPreResetSchema, preResetTable, version.Int64)
}

// Up applies every pending migration and returns the versions applied.
func (m *Migrator) Up(ctx context.Context) ([]int64, error) {
	if err := m.checkNotPreReset(ctx); err != nil {
		return nil, err
	}
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
	if err := m.checkNotPreReset(ctx); err != nil {
		return 0, err
	}
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
	if err := m.checkNotPreReset(ctx); err != nil {
		return nil, err
	}
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
	if err := m.checkNotPreReset(ctx); err != nil {
		return false, err
	}
	ok, err := m.provider.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check pending migrations: %w", err)
	}
	return ok, nil
}
