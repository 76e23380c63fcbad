package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/worker"
)

// devIssuerPath is where the development issuer is mounted.
const devIssuerPath = "/dev-issuer"

// migrateAndConfigure applies pending migrations (unless NoMigrate) and
// checks this node's max attempts against the database's.
func migrateAndConfigure(ctx context.Context, pool *pgxpool.Pool, cfg Config) error {
	m, err := postgres.NewMigrator(pool, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	var applied []int64
	if !cfg.NoMigrate {
		if applied, err = m.Up(ctx); err != nil {
			return err
		}
		if len(applied) > 0 {
			cfg.Logger.Info("applied migrations", "versions", applied)
		}
	} else if pending, err := m.Pending(ctx); err != nil {
		return err
	} else if pending {
		return fmt.Errorf("the database schema is not current and --no-migrate was given: run `notifyd migrate up`")
	}
	return agreeMaxAttempts(ctx, postgres.NewQueue(pool), cfg.MaxAttempts, slices.Contains(applied, postgres.InitialMigration))
}

// agreeMaxAttempts holds a node to the database's attempt limit, one
// setting for every node (see postgres.Queue.MaxAttempts): a node that was
// given one (NOTIFY_MAX_ATTEMPTS) writes it only when its own start created
// the schema, and otherwise refuses to start unless it is the database's.
// Writing it at every start let whichever node started last decide for
// all; `notifyd migrate up --max-attempts N` changes it on purpose.
func agreeMaxAttempts(ctx context.Context, q *postgres.Queue, want int, created bool) error {
	if want == 0 {
		return nil
	}
	if created {
		return q.SetMaxAttempts(ctx, want)
	}
	have, err := q.MaxAttempts(ctx)
	if err != nil {
		return err
	}
	if have != want {
		return fmt.Errorf("NOTIFY_MAX_ATTEMPTS is %d but the database's max attempts, one setting for every node, is %d: "+
			"change it with `notifyd migrate up --max-attempts %d`, or leave NOTIFY_MAX_ATTEMPTS unset on this node", want, have, want)
	}
	return nil
}

// newDevIssuer builds the embedded development issuer, with its key kept in
// the database so every node and `notifyd dev-token` agree.
func newDevIssuer(ctx context.Context, pool *pgxpool.Pool, baseURL string, log *slog.Logger) (*issuer.Issuer, error) {
	pem, err := postgres.DevSigningKey(ctx, pool, issuer.NewKeyPEM)
	if err != nil {
		return nil, err
	}
	key, err := issuer.ParseKey(pem)
	if err != nil {
		return nil, fmt.Errorf("parse dev signing key: %w", err)
	}
	return issuer.New(issuer.Config{URL: baseURL + devIssuerPath, Key: key, Logger: log})
}

// redirectURL is the browser sign-in's callback: OIDC_REDIRECT_URL, or with
// development sign-in this server's own listen address (loopback, which
// Validate enforces). Never a request's Host header: its sender chooses it.
// Empty turns browser sign-in off.
func redirectURL(cfg Config, listenAddr string) string {
	if cfg.RedirectURL == "" && cfg.DevAuth {
		return "http://" + listenAddr + "/auth/callback"
	}
	return cfg.RedirectURL
}

// workerSet is the queue workers of one process.
type workerSet struct {
	nodeID  string
	workers []*worker.Worker
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// workerHooks feeds the workers' activity into the metrics.
func workerHooks(m *metrics.Metrics) worker.Hooks {
	return worker.Hooks{
		Claimed: func(n int) { m.ClaimBatch.Observe(float64(n)) },
		Published: func(n int, _ int64, took time.Duration) {
			m.Published.Add(float64(n))
			m.PublishBatch.Observe(float64(n))
			m.PublishLatency.Observe(took.Seconds())
		},
		Failed:   func(status string) { m.PublishFailures.WithLabelValues(status).Inc() },
		SetAside: func(n int) { m.SetAside.WithLabelValues("publish").Add(float64(n)) },
	}
}

func newWorkerSet(queue *postgres.Queue, cfg Config, hooks worker.Hooks) (*workerSet, error) {
	host, _ := os.Hostname()
	ws := &workerSet{nodeID: fmt.Sprintf("%s/%d", host, os.Getpid())}
	for i := range max(cfg.Workers, 0) {
		wc := cfg.Worker
		wc.Logger = cfg.Logger
		wc.Hooks = hooks
		if wc.ID == "" {
			wc.ID = fmt.Sprintf("%s/%d", ws.nodeID, i+1)
		} else {
			wc.ID = fmt.Sprintf("%s/%d", wc.ID, i+1)
		}
		w, err := worker.New(queue, wc)
		if err != nil {
			return nil, err
		}
		ws.workers = append(ws.workers, w)
	}
	return ws, nil
}

func (ws *workerSet) start(ctx context.Context) {
	ctx, ws.cancel = context.WithCancel(ctx)
	for _, w := range ws.workers {
		ws.wg.Add(1)
		go func() { defer ws.wg.Done(); _ = w.Run(ctx) }()
	}
}

func (ws *workerSet) wake() {
	for _, w := range ws.workers {
		w.Wake()
	}
}

// stop ends the workers; each releases its claims before returning.
func (ws *workerSet) stop() {
	if ws.cancel != nil {
		ws.cancel()
	}
	ws.wg.Wait()
}
