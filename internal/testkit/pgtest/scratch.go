package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifyd/notifyd/internal/postgres"
)

// Scratch is a database of its own on a server, made for one test, one
// benchmark phase or one third-party program under test (Hydra), and
// dropped when it is done with.
type Scratch struct {
	Name string
	// URL is the server's connection string with Name as the database.
	URL string

	serverURL string
	dropOnce  sync.Once
	dropErr   error
}

// ScratchConfig says how CreateScratch makes a database.
type ScratchConfig struct {
	// Prefix begins the database's name; 12 random hex digits follow, so
	// that test binaries and benchmark runs sharing a server never collide.
	Prefix string
	// Template, if set, is the database copied (a migrated template makes a
	// test's database in a fraction of the time migrating takes); otherwise
	// the database starts empty.
	Template string
	// Settings become the database's defaults for every later connection
	// (ALTER DATABASE … SET name TO 'value'); names may be custom
	// ("app.x").
	Settings map[string]string
}

// createTimeout bounds creating a database: CREATE DATABASE copies a
// template and syncs it, seconds on a busy disk.
const createTimeout = time.Minute

// CreateScratch creates a database on the server at serverURL, which is
// used only to create and drop it.
func CreateScratch(ctx context.Context, serverURL string, cfg ScratchConfig) (*Scratch, error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := cfg.Prefix + "_" + hex.EncodeToString(suffix)
	dbURL, err := WithDatabase(serverURL, name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, createTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", postgres.Redact(serverURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if cfg.Template != "" {
		create += " TEMPLATE " + pgx.Identifier{cfg.Template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	s := &Scratch{Name: name, URL: dbURL, serverURL: serverURL}
	for setting, value := range cfg.Settings {
		// A setting's name is an identifier (or two, dotted); its value a
		// string literal, which PostgreSQL converts to the setting's type.
		q := fmt.Sprintf("ALTER DATABASE %s SET %s TO '%s'", pgx.Identifier{name}.Sanitize(),
			pgx.Identifier(strings.Split(setting, ".")).Sanitize(), strings.ReplaceAll(value, "'", "''"))
		if _, err := conn.Exec(ctx, q); err != nil {
			return nil, errors.Join(fmt.Errorf("set %s on database %s: %w", setting, name, err), s.Drop())
		}
	}
	return s, nil
}

// Drop drops the database, disconnecting anyone still on it; only the
// first call does anything. It runs on a context of its own, so that an
// interrupted run still cleans up.
func (s *Scratch) Drop() error {
	s.dropOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.serverURL)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.Name}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
		if err != nil {
			s.dropErr = fmt.Errorf("drop database %s: %w", s.Name, err)
		}
	})
	return s.dropErr
}

// NewScratch is CreateScratch on the test server (ServerURL), failing t
// on error, with the database dropped when t ends.
func NewScratch(t testing.TB, cfg ScratchConfig) *Scratch {
	t.Helper()
	s, err := CreateScratch(t.Context(), ServerURL(), cfg)
	if err != nil {
		t.Fatalf("%v\n(is PostgreSQL running at %s? set TEST_DATABASE_URL)", err, postgres.Redact(ServerURL()))
	}
	t.Cleanup(func() {
		if err := s.Drop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s
}

// WithDatabase returns the connection string connString with its database
// replaced by name, keeping everything else (sslmode and any other
// parameter, a password however it is escaped). Both forms of connection
// string work: a URL, and keyword=value pairs (where a later keyword wins).
func WithDatabase(connString, name string) (string, error) {
	if _, err := pgconn.ParseConfig(connString); err != nil {
		return "", fmt.Errorf("connection string %s: %w", postgres.Redact(connString), err)
	}
	if u, err := url.Parse(connString); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name)
	return connString + " dbname='" + quoted + "'", nil
}
