// Package retention removes history older than the retention period:
// published notifications (and, by cascade, their queue items) in small
// batches, each its own short transaction, so it never holds locks for long
// or competes with the workers for more than a moment. Failed and pending
// items are never removed: they wait for an admin. A resume from before what
// is left gets replay "truncated" (notify.retention_marks, shown as
// stream_head.truncated_before).
package retention

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
)

// Config tunes retention.
type Config struct {
	// Retention is how long published notifications are kept (NOTIFY_RETENTION). Default 30 days.
	Retention time.Duration
	// Interval between passes. Default 1m.
	Interval time.Duration
	// BatchSize is how many notifications one transaction deletes. Default 1000.
	BatchSize int
	// Pause between batches of one pass, to leave room for other work. Default 50ms.
	Pause time.Duration
	// Logger receives a line per pass that deleted something.
	Logger *slog.Logger
	// Batch is called after each batch with how many it deleted (tests, metrics).
	Batch func(deleted int64)
}

// Janitor runs the retention passes.
type Janitor struct {
	cfg      Config
	notes    *postgres.Notifications
	sessions *postgres.Sessions
}

// New returns a janitor.
func New(notes *postgres.Notifications, sessions *postgres.Sessions, cfg Config) *Janitor {
	return &Janitor{cfg: cfg.WithDefaults(), notes: notes, sessions: sessions}
}

// WithDefaults returns a copy of c with every unset field defaulted.
func (c Config) WithDefaults() Config {
	c.Retention = cmp.Or(c.Retention, 30*24*time.Hour)
	c.Interval = cmp.Or(c.Interval, time.Minute)
	c.BatchSize = cmp.Or(c.BatchSize, 1000)
	c.Pause = cmp.Or(c.Pause, 50*time.Millisecond)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Run makes a pass every Interval until ctx ends.
func (j *Janitor) Run(ctx context.Context) {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := j.Pass(ctx); err != nil && ctx.Err() == nil {
			j.cfg.Logger.WarnContext(ctx, "retention pass failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass deletes everything past retention, batch by batch, and expired
// sessions. It returns how many notifications it deleted.
func (j *Janitor) Pass(ctx context.Context) (int64, error) {
	cutoff := time.Now().Add(-j.cfg.Retention)
	var total int64
	for {
		n, err := j.notes.DeletePublishedBefore(ctx, cutoff, j.cfg.BatchSize)
		if err != nil {
			return total, err
		}
		total += n
		if j.cfg.Batch != nil && n > 0 {
			j.cfg.Batch(n)
		}
		if n < int64(j.cfg.BatchSize) {
			break
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(j.cfg.Pause):
		}
	}
	if total > 0 {
		j.cfg.Logger.InfoContext(ctx, "retention removed old notifications", "deleted", total, "older_than", cutoff)
	}
	if j.sessions != nil {
		if _, err := j.sessions.PurgeExpired(ctx); err != nil {
			return total, err
		}
	}
	return total, nil
}
