package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// audience is the client id the bench's issuer signs tokens for.
const audience = "notifyd-bench"

// env is what every phase runs against: the server (HTTP, streams, feed,
// listener and queue worker, all in this process, as `notifyd serve` runs
// them), a real OIDC issuer so streams authenticate the way they do in
// production, and an admin pool for the bench's own queries.
type env struct {
	cfg    config
	db     *benchDB
	app    *app.App
	iss    *cluster.Issuer
	admin  *pgxpool.Pool
	client *http.Client
}

// startEnv starts the issuer, then the server, which migrates the database.
func startEnv(ctx context.Context, cfg config, db *benchDB, logOut io.Writer) (*env, error) {
	e := &env{cfg: cfg, db: db, client: &http.Client{Transport: &http.Transport{}}}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	var err error
	if e.iss, err = cluster.StartIssuer(audience); err != nil {
		return nil, err
	}

	level := slog.LevelWarn
	if cfg.Verbose {
		level = slog.LevelInfo
	}
	e.app, err = app.Start(ctx, app.Config{
		DatabaseURL: db.URL,
		Addr:        "127.0.0.1:0",
		OIDC:        auth.Config{IssuerURL: e.iss.URL(), Audience: audience},
		Workers:     cfg.ServerWorkers,
		PoolSize:    cfg.ServerPool,
		Logger:      slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return nil, fmt.Errorf("start notifyd: %w", err)
	}
	e.admin, err = newPool(ctx, db.URL, 4, "notifyd-bench-admin")
	if err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// token signs a bearer token for sub, valid for longer than any run.
func (e *env) token(sub string) (string, error) {
	return e.iss.Token(sub, nil, 24*time.Hour)
}

// Close stops the server (which ends its streams), then the issuer.
func (e *env) Close() error {
	var errs []error
	if e.admin != nil {
		e.admin.Close()
	}
	if e.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs = append(errs, e.app.Shutdown(ctx))
	}
	if e.iss != nil {
		e.iss.Close()
	}
	e.client.CloseIdleConnections()
	return errors.Join(errs...)
}

// queueBacklog is how many queue items are not yet sent or failed.
func (e *env) queueBacklog(ctx context.Context) (int64, error) {
	var n int64
	err := e.admin.QueryRow(ctx, `SELECT count(*) FROM notify.queue_items WHERE status IN ('pending', 'processing')`).Scan(&n)
	return n, err
}

// waitDrained polls until the queue has no pending or processing items.
func (e *env) waitDrained(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(e.cfg.Timeout)
	for {
		n, err := e.queueBacklog(ctx)
		if err != nil {
			return time.Since(start), fmt.Errorf("read queue backlog: %w", err)
		}
		if n == 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("queue still holds %d items after %s", n, e.cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
