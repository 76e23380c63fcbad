package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Environment is what the figures depend on besides the code: they are
// only comparable between runs with the same environment.
type Environment struct {
	Time            time.Time         `json:"time"`
	Cores           int               `json:"cores"`
	GOMAXPROCS      int               `json:"gomaxprocs"`
	GoVersion       string            `json:"go_version"`
	Platform        string            `json:"platform"`
	PostgresVersion string            `json:"postgres_version"`
	PostgresConfig  map[string]string `json:"postgres_settings"`
	Database        string            `json:"database"`
	LoadBefore      float64           `json:"loadavg1_before"` // before the bench started; -1 unknown
	ServerURL       string            `json:"server_url"`
}

// postgresSettings are the server settings that move insert and commit
// rates the most.
var postgresSettings = []string{"synchronous_commit", "fsync", "shared_buffers", "max_wal_size", "wal_level"}

// describeServer describes the machine and the PostgreSQL server at
// serverURL, for runs whose phases each have their own database.
func describeServer(ctx context.Context, serverURL string) Environment {
	pool, err := newPool(ctx, serverURL, 1, "notifyd-bench-admin")
	if err != nil {
		env := describe(ctx, nil, "", serverURL)
		env.PostgresVersion = "unknown (" + err.Error() + ")"
		return env
	}
	defer pool.Close()
	return describe(ctx, pool, "(one fresh database per phase)", serverURL)
}

func describe(ctx context.Context, pool *pgxpool.Pool, database, serverURL string) Environment {
	env := Environment{Time: time.Now().UTC().Truncate(time.Second), Cores: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		PostgresConfig: map[string]string{}, Database: database, ServerURL: redact(serverURL)}
	if pool == nil {
		return env
	}
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&env.PostgresVersion); err != nil {
		env.PostgresVersion = "unknown (" + err.Error() + ")"
	}
	for _, name := range postgresSettings {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			env.PostgresConfig[name] = v
		}
	}
	return env
}

// benchDB is the run's own database. It starts empty: app.Start migrates
// it, exactly as a first deployment would. (The tests clone a migrated
// template instead; a benchmark runs once, so migrating costs nothing.)
type benchDB struct {
	Name      string
	URL       string
	serverURL string
	dropOnce  sync.Once
	dropErr   error
}

// createDatabase creates notifyd_bench_<random> on the server at serverURL,
// with settings as the database's defaults for every later connection.
func createDatabase(ctx context.Context, serverURL string, settings []setting) (*benchDB, error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := "notifyd_bench_" + hex.EncodeToString(suffix)
	dbURL, err := withDatabase(serverURL, name)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(serverURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	db := &benchDB{Name: name, URL: dbURL, serverURL: serverURL}
	for _, st := range settings {
		// The name was checked against settingName; the value is a literal.
		q := fmt.Sprintf("ALTER DATABASE %s SET %s TO '%s'", pgx.Identifier{name}.Sanitize(), st.Name,
			strings.ReplaceAll(st.Value, "'", "''"))
		if _, err := conn.Exec(cctx, q); err != nil {
			return nil, errors.Join(fmt.Errorf("-db-set %s: %w", st.Name, err), db.Drop())
		}
	}
	return db, nil
}

// Drop removes the database, disconnecting anyone still on it. It runs on
// its own context so an interrupted run still cleans up.
func (d *benchDB) Drop() error {
	d.dropOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, d.serverURL)
		if err != nil {
			d.dropErr = fmt.Errorf("drop database %s: %w", d.Name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.Name}.Sanitize()+" WITH (FORCE)"); err != nil {
			d.dropErr = fmt.Errorf("drop database %s: %w", d.Name, err)
		}
	})
	return d.dropErr
}

// withDatabase returns the URL serverURL with its database replaced by name.
// Only URL-form connection strings are accepted: the server's own
// connection string has to be rewritten for app.Config.DatabaseURL.
func withDatabase(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%w: -db %q: want a postgres:// URL", errUsage, redact(serverURL))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// redact drops a password from a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// newPool opens a pool of exactly n connections, all connected before it
// returns, so no timed run pays for connection setup.
func newPool(ctx context.Context, dbURL string, n int, appName string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pc.MaxConns, pc.MinConns = int32(n), int32(n)
	pc.ConnConfig.RuntimeParams["application_name"] = appName
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("connect producer: %w", err)
		}
		conns = append(conns, c)
	}
	return pool, nil
}
