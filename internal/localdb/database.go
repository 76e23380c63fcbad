package localdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/user"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connectTimeout bounds one connection attempt, so that a server that
// accepts TCP but never answers cannot stall Resolve.
const connectTimeout = 5 * time.Second

// checkConnect opens and closes one connection to connString.
func checkConnect(ctx context.Context, connString string) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// useLocalServer makes database name on the server at addr, connecting as
// postgres and then as the current OS user (the two roles a fresh install
// lets in), and returns its connection string.
func useLocalServer(ctx context.Context, addr, name string) (string, error) {
	roles := []string{"postgres"}
	if u, err := user.Current(); err == nil && u.Username != "postgres" {
		roles = append(roles, u.Username)
	}
	var errs []error
	for _, role := range roles {
		err := ensureDatabase(ctx, serverURL(role, addr, "postgres"), name)
		if err == nil {
			return serverURL(role, addr, name), nil
		}
		errs = append(errs, fmt.Errorf("as %s: %w", role, err))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			break // nothing answered: another role will not help
		}
	}
	return "", errors.Join(errs...)
}

// serverURL is the connection string for role and database dbname at addr.
// TLS is off: the server is on this machine.
func serverURL(role, addr, dbname string) string {
	u := url.URL{Scheme: "postgres", User: url.User(role), Host: addr, Path: "/" + dbname, RawQuery: "sslmode=disable"}
	return u.String()
}

// ensureDatabase creates database name unless it exists, through the
// maintenance database at maintURL. Two processes may race to create it (test
// binaries start together): losing that race is success.
func ensureDatabase(ctx context.Context, maintURL, name string) error {
	connectCtx, cancelConnect := context.WithTimeout(ctx, connectTimeout)
	conn, err := pgx.Connect(connectCtx, maintURL)
	cancelConnect()
	if err != nil {
		return err
	}
	// CREATE DATABASE copies a template and syncs it: seconds on a busy disk.
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	// 42P04 duplicate_database; 23505 unique_violation on pg_database's name
	// index is what the loser of a close race gets instead.
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}
