package app

import (
	"context"
	"fmt"
	"sync"

	"github.com/notifyd/notifyd/internal/listener"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/worker"
)

// RunWorker runs queue workers alone (`notifyd worker`), for deployments
// that keep publishing apart from the HTTP nodes, until ctx ends.
func RunWorker(ctx context.Context, cfg Config) error {
	cfg.DevAuth = true // no HTTP here: identity settings do not apply
	cfg = cfg.WithDefaults()
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("DATABASE_URL is required")
	}
	pool, err := postgres.OpenPool(ctx, cfg.DatabaseURL, postgres.PoolConfig{MaxConns: cfg.PoolSize, ApplicationName: "notifyd-worker",
		AfterConnect: postgres.HistoryHook(cfg.Logger)})
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrateAndConfigure(ctx, pool, cfg); err != nil {
		return err
	}
	ws, err := newWorkerSet(postgres.NewQueue(pool), cfg, worker.Hooks{})
	if err != nil {
		return err
	}
	lis, err := listener.New(listener.Config{URL: cfg.DatabaseURL, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	lis.Handle("notify_queue", func(string) { ws.wake() })
	lis.OnConnect(ws.wake)
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = lis.Run(lctx) }()
	ws.start(context.WithoutCancel(ctx))
	cfg.Logger.Info("notifyd worker running", "workers", len(ws.workers))
	<-ctx.Done()
	ws.stop()
	cancel()
	wg.Wait()
	cfg.Logger.Info("worker stopped")
	return nil
}
