// Package pgtest gives each test its own PostgreSQL database, cloned from a
// migrated template, so tests run in parallel against the real server and
// leave nothing behind. Scratch databases (empty or copied, with settings
// of their own) serve the benchmark and the third-party programs tests run
// (Hydra) the same way.
//
// The server is TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres
// (any database on it will do: it is only used to create and drop others).
package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/migrations"
)

// DefaultURL is the server used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL is the maintenance connection string of the test server.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// DB is one test's database.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// New creates a fresh migrated database for t and drops it when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	return newDB(t, nil)
}

// NewQueued is New with every INSERT into notify.notifications left queued
// for the workers (notify.publish_at_commit off for the database), as the
// tests of the workers' claim and publish want: by default a transaction's
// commit publishes the notifications it inserted itself when no other
// publisher is at work (migration 00007), and nothing would be left to claim.
func NewQueued(t testing.TB) *DB {
	t.Helper()
	return newDB(t, map[string]string{"notify.publish_at_commit": "off"})
}

func newDB(t testing.TB, settings map[string]string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx) })
	if templateErr != nil {
		t.Fatalf("prepare test database template: %v\n(is PostgreSQL running at %s? set TEST_DATABASE_URL)", templateErr, postgres.Redact(ServerURL()))
	}
	db := NewScratch(t, ScratchConfig{Prefix: fmt.Sprintf("notifyd_test_%d", os.Getpid()), Template: templateName, Settings: settings})
	pool, err := postgres.OpenPool(ctx, db.URL, postgres.PoolConfig{MaxConns: 8, ApplicationName: "notifyd-test"})
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(pool.Close) // before the database is dropped: cleanups run last first
	return &DB{Name: db.Name, URL: db.URL, Pool: pool}
}

// NewQueue is NewQueued with the notification queue over the database's
// pool, where most queue and worker tests start.
func NewQueue(t testing.TB) (*DB, *postgres.Queue) {
	t.Helper()
	db := NewQueued(t)
	return db, postgres.NewQueue(db.Pool)
}

// ensureTemplate creates (once per schema version, shared by every test
// process) a database with all migrations applied.
func ensureTemplate(ctx context.Context) (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "notifyd_template_" + sum[:12]
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// Test binaries of several packages start at once: one builds the template.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(1852797545, 99)"); err != nil {
		return "", err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(1852797545, 99)")
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", err
	}
	buildingURL, err := WithDatabase(ServerURL(), building)
	if err != nil {
		return "", err
	}
	pool, err := postgres.OpenPool(ctx, buildingURL, postgres.PoolConfig{MaxConns: 2})
	if err != nil {
		return "", err
	}
	m, err := postgres.NewMigrator(pool, nil)
	if err == nil {
		_, err = m.Up(ctx)
		m.Close()
	}
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return name, nil
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// Exec runs sql on pool and returns the rows affected, failing t on error.
func Exec(t testing.TB, ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	tag, err := pool.Exec(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return tag.RowsAffected()
}

// Scalar runs a query that returns one value, failing t on error.
func Scalar[T any](t testing.TB, ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}
