package main

import (
	"context"
	"fmt"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// Stage is one part of the commit-to-receipt latency.
type Stage struct {
	Name    string        `json:"name"`
	Latency stats.Summary `json:"latency"`
}

// latencyStages splits each commit-to-receipt latency at the moment the
// worker's publish transaction started, which the database keeps:
// notifications.published_at is now() in that transaction, and now() is
// the transaction's start. The first part is the queue (the wake-up or the
// worker's loop, and the claim); the second is the publish statement and
// its commit, then NOTIFY, the feed's read, the hub, the stream's write
// and the client. It compares the database's clock with this process's
// wall clock, so it is only meaningful when PostgreSQL runs on this
// machine; the report says so.
func latencyStages(ctx context.Context, e *env, user string, sent []committed, ds []delivery) ([]Stage, error) {
	rows, err := e.admin.Query(ctx, `SELECT id::text, published_at FROM notify.notifications
		WHERE target_user_id = $1 AND published_at IS NOT NULL`, user)
	if err != nil {
		return nil, fmt.Errorf("read publish times: %w", err)
	}
	published := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read publish times: %w", err)
		}
		published[id] = at
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read publish times: %w", err)
	}
	received := make(map[string]time.Time, len(ds))
	for _, d := range ds {
		received[d.ID] = d.At
	}
	var queue, rest []time.Duration
	for _, c := range sent {
		pub, ok1 := published[c.ID]
		got, ok2 := received[c.ID]
		if !ok1 || !ok2 {
			continue
		}
		// Round(0) drops the monotonic reading: the database time is wall time.
		queue = append(queue, pub.Sub(c.At.Round(0)))
		rest = append(rest, got.Round(0).Sub(pub))
	}
	return []Stage{
		{Name: "commit -> publish transaction starts (queue: wake-up or worker loop, claim)", Latency: stats.Summarize(queue)},
		{Name: "publish starts -> client reads (publish + commit, NOTIFY, feed, hub, stream)", Latency: stats.Summarize(rest)},
	}, nil
}
