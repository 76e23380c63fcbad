// Package apptest runs real notifyd servers for end-to-end tests: a fresh
// database (package pgtest), a real OpenID Connect issuer on its own HTTP
// server (package issuer), and app.Start on port 0. Streams are read over
// real HTTP with package wire.
package apptest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// Audience is the client id the test issuer signs for.
const Audience = "notifyd-test"

// Env is a database and an issuer shared by the servers of one test.
type Env struct {
	DB     *pgtest.DB
	Issuer *issuer.Issuer
	t      testing.TB
}

// NewEnv prepares a database and starts an issuer for t.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	db := pgtest.New(t)
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	iss, err := issuer.New(issuer.Config{URL: srv.URL, ClientID: Audience})
	if err != nil {
		t.Fatalf("start issuer: %v", err)
	}
	srv.Config.Handler = iss.Handler()
	return &Env{DB: db, Issuer: iss, t: t}
}

// NewNode prepares an environment for t and starts a server on it with
// Config unchanged: the one node most end-to-end tests talk to.
func NewNode(t testing.TB) (*Env, *app.App) {
	t.Helper()
	env := NewEnv(t)
	return env, env.Start(env.Config())
}

// Config returns a server configuration for this environment, with short
// intervals suited to tests.
func (e *Env) Config() app.Config {
	return app.Config{
		DatabaseURL: e.DB.URL,
		Addr:        "127.0.0.1:0",
		OIDC:        auth.Config{IssuerURL: e.Issuer.URL(), Audience: Audience},
		PoolSize:    6,
		Logger:      TestLogger(e.t),
	}
}

// Start runs a server with cfg (from Config, adjusted) until t ends.
func (e *Env) Start(cfg app.Config) *app.App {
	e.t.Helper()
	a, err := app.Start(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("start notifyd: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			e.t.Errorf("shutdown: %v", err)
		}
	})
	return a
}

// Token signs a bearer token for sub with roles, valid for an hour.
func (e *Env) Token(sub string, roles ...string) string {
	e.t.Helper()
	tok, err := e.Issuer.Token(sub, roles, time.Hour)
	if err != nil {
		e.t.Fatalf("sign token: %v", err)
	}
	return tok
}

// TestLogger sends logs to t.Log (warnings and above unless -v is useful).
func TestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

var _ io.Writer = testWriter{}
