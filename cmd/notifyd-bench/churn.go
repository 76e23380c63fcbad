package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// ChurnResult is the churn phase: the cost of the pipeline's own statements
// (claim and publish, the feed's read) on a fresh database and again after
// many notifications have passed through it (queued, claimed and published,
// read, deleted by retention), with autovacuum as configured. A cost that
// grows with what passed through, not with the work asked for, shows here.
type ChurnResult struct {
	Seconds float64    `json:"seconds"`
	Fresh   ChurnCosts `json:"fresh"`
	After   ChurnCosts `json:"after"`
	Ratios  []float64  `json:"ratios"` // after / fresh, by churnStatements
	// TableBytes is notify's tables and indexes on disk after the churn.
	TableBytes int64 `json:"table_bytes"`
	// Autovacuum is the server's setting; when it is off (CI machines run
	// that way), the phase vacuums notify's tables itself as autovacuum
	// would (Vacuums times), so "after" is what a deployment sees.
	Autovacuum  string  `json:"autovacuum"`
	Vacuums     int     `json:"vacuums"`
	TargetRatio float64 `json:"target_ratio"`
	TargetMet   bool    `json:"target_met"`
}

// churnStatements are the statements timed, in ChurnCosts.Ms's order.
var churnStatements = []string{"claim and publish 100 items", "claim and publish 1 item", "feed read of 100", "retention batch, nothing old enough"}

// ChurnCosts are medians over the measured rounds: Ms by churnStatements,
// and the planning and execution of the claim's and retention's index
// walks (EXPLAIN ANALYZE): the planner estimates a range past the
// statistics by reading the index's end, dead entries included.
type ChurnCosts struct {
	Ms []float64 `json:"ms"`
	// WALBytes is the WAL each claim and publish wrote (medians, bytes;
	// the first two of churnStatements), its commit included: a full-page
	// image (8 kB) for each page first changed since the checkpoint shows
	// here, where the time of a one-item publish hides it in its flush.
	WALBytes                         []float64 `json:"wal_bytes"`
	ClaimPlanMs, ClaimExecMs         float64
	RetentionPlanMs, RetentionExecMs float64
}

// churnChunk is how many notifications go through the pipeline at once.
const churnChunk = 50_000

// runChurn is the churn phase (issue 12's target: each cost after
// cfg.ChurnRows within 1.5 times its fresh value).
func (b bench) runChurn(ctx context.Context) (res *ChurnResult, err error) {
	cfg, prog := b.cfg, b.prog
	db, err := createDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := db.Drop(); derr != nil && err == nil {
			err = derr
		}
	}()
	pool, err := newPool(ctx, db.URL, 4, "notifyd-bench churn")
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	m, err := postgres.NewMigrator(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if _, err := m.Up(ctx); err != nil {
		m.Close()
		return nil, fmt.Errorf("migrate the churn database: %w", err)
	}
	m.Close()
	q, notes := postgres.NewQueue(pool), postgres.NewNotifications(pool)

	res = &ChurnResult{TargetRatio: 1.5}
	prog.Printf("churn: measuring the pipeline's statements on a fresh database")
	if res.Fresh, err = measureChurnCosts(ctx, pool, q, notes); err != nil {
		return res, err
	}
	prog.Printf("churn: fresh: %s", strings.Join(rowsOf(churnStatements, func(i int, st string) string {
		return fmt.Sprintf("%s %.2f ms", st, res.Fresh.Ms[i])
	}), ", "))

	start := time.Now()
	var done atomic.Int64
	stop := prog.Every(10*time.Second, func() string {
		return fmt.Sprintf("churn: %s of %s notifications through (queued, published, read, deleted)",
			num(float64(done.Load())), num(float64(cfg.ChurnRows)))
	})
	_ = pool.QueryRow(ctx, `SHOW autovacuum`).Scan(&res.Autovacuum)
	for chunk := 1; done.Load() < cfg.ChurnRows && ctx.Err() == nil; chunk++ {
		n := min(churnChunk, cfg.ChurnRows-done.Load())
		if err := churnOnce(ctx, pool, q, notes, n, cfg.ChurnKeep); err != nil {
			stop()
			return res, err
		}
		done.Add(n)
		// Autovacuum's defaults (and notify's table settings) would vacuum
		// the churned tables about this often.
		if res.Autovacuum == "off" && chunk%4 == 0 {
			if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) notify.notifications, notify.queue_items, notify.notification_roles, notify.retention_marks, notify.read_cursors`); err != nil {
				stop()
				return res, fmt.Errorf("churn: vacuum: %w", err)
			}
			res.Vacuums++
		}
	}
	stop()
	res.Seconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	_ = pool.QueryRow(ctx, `SELECT COALESCE(sum(pg_total_relation_size(relid)), 0) FROM pg_stat_user_tables WHERE schemaname = 'notify'`).Scan(&res.TableBytes)

	prog.Printf("churn: measuring again after %s notifications", num(float64(cfg.ChurnRows)))
	if res.After, err = measureChurnCosts(ctx, pool, q, notes); err != nil {
		return res, err
	}
	for i, after := range res.After.Ms {
		res.Ratios = append(res.Ratios, ratio(after, res.Fresh.Ms[i]))
	}
	res.TargetMet = slices.Max(res.Ratios) <= res.TargetRatio
	return res, nil
}

// churnOnce passes n notifications through: queued (the trigger), claimed
// and published in batches, read by their users, deleted by retention.
func churnOnce(ctx context.Context, pool *pgxpool.Pool, q *postgres.Queue, notes *postgres.Notifications, n, keep int64) error {
	// One in five to a role, one in fifty to everyone, the rest to one of
	// 100,000 users.
	if _, err := pool.Exec(ctx, `INSERT INTO notify.notifications (message, target_user_id, target_roles)
		SELECT 'churn', CASE WHEN g % 5 <> 0 THEN 'user-' || (g % 100000) END,
		       CASE WHEN g % 5 = 0 AND g % 50 <> 0 THEN ARRAY['role-' || (g % 200)] END
		FROM generate_series(1, $1::bigint) g`, n); err != nil {
		return fmt.Errorf("churn: queue: %w", err)
	}
	for left := n; left > 0; {
		b, err := q.ClaimAndPublish(ctx, 5000, time.Hour)
		if err != nil {
			return fmt.Errorf("churn: publish: %w", err)
		}
		if b.Items == 0 {
			return fmt.Errorf("churn: %d queued items not found by the claim", left)
		}
		left -= int64(b.Items)
	}
	// A thousand users read everything they have.
	if _, err := pool.Exec(ctx, `INSERT INTO notify.read_cursors AS c (user_id, read_up_to)
		SELECT DISTINCT 'user-' || (random() * 99999)::int, (SELECT last_seq FROM notify.stream_head) FROM generate_series(1, 1000)
		ON CONFLICT (user_id) DO UPDATE SET read_up_to = EXCLUDED.read_up_to, updated_at = now()`); err != nil {
		return fmt.Errorf("churn: read: %w", err)
	}
	// Retention deletes what was published before the newest keep, as a
	// retention period leaves its window in place (a cutoff in the future,
	// keep 0, deletes everything: the table is empty at every vacuum, and
	// the plans cached from those statistics are the ones SCALING.md
	// section 7 describes).
	cutoff := time.Now().Add(time.Hour)
	if keep > 0 {
		err := pool.QueryRow(ctx, `SELECT published_at FROM notify.notifications
			WHERE seq IS NOT NULL ORDER BY seq DESC OFFSET $1 LIMIT 1`, keep).Scan(&cutoff)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // fewer than keep so far
		}
		if err != nil {
			return fmt.Errorf("churn: retention's cutoff: %w", err)
		}
	}
	for {
		d, err := notes.DeletePublishedBefore(ctx, cutoff, 10_000)
		if err != nil {
			return fmt.Errorf("churn: retention: %w", err)
		}
		if d == 0 {
			return nil
		}
	}
}

// measureChurnCosts times the pipeline's statements, 40 rounds each, and
// returns their medians. Both measurements start right after a CHECKPOINT
// (best effort: it needs a superuser), as the producer phase's runs do: the
// churn's last VACUUM leaves a checkpoint's worth of WAL behind it, and a
// checkpoint running through the rounds (its writes, and a full-page image
// for the first change of every page after it starts) would be timed as
// the statements' cost of the "after" rounds only.
func measureChurnCosts(ctx context.Context, pool *pgxpool.Pool, q *postgres.Queue, notes *postgres.Notifications) (ChurnCosts, error) {
	const rounds = 40
	_, _ = pool.Exec(ctx, "CHECKPOINT")
	times := make([][]time.Duration, len(churnStatements)) // by churnStatements
	wal := make([][]float64, 2)                            // bytes, by the first two churnStatements
	for i := range rounds {
		if _, err := pool.Exec(ctx, `INSERT INTO notify.notifications (message, target_user_id)
			SELECT 'measure', 'user-' || g FROM generate_series(1, 100) g`); err != nil {
			return ChurnCosts{}, err
		}
		var head int64
		if err := pool.QueryRow(ctx, `SELECT last_seq FROM notify.stream_head`).Scan(&head); err != nil {
			return ChurnCosts{}, err
		}
		lsn, err := walPosition(ctx, pool)
		if err != nil {
			return ChurnCosts{}, err
		}
		t := time.Now()
		b, err := q.ClaimAndPublish(ctx, 500, 2*time.Second)
		if err != nil {
			return ChurnCosts{}, err
		}
		times[0] = append(times[0], time.Since(t))
		if wal[0], err = walSince(ctx, pool, lsn, wal[0]); err != nil {
			return ChurnCosts{}, err
		}
		if b.Items != 100 {
			return ChurnCosts{}, fmt.Errorf("churn: measure round %d claimed %d, want 100", i, b.Items)
		}
		t = time.Now()
		ns, _, _, err := notes.Published(ctx, head, 1000)
		if err != nil {
			return ChurnCosts{}, err
		}
		times[2] = append(times[2], time.Since(t))
		if len(ns) != 100 {
			return ChurnCosts{}, fmt.Errorf("churn: the feed read %d, want 100", len(ns))
		}

		if _, err := pool.Exec(ctx, `INSERT INTO notify.notifications (message, target_user_id) VALUES ('measure', 'user-1')`); err != nil {
			return ChurnCosts{}, err
		}
		if lsn, err = walPosition(ctx, pool); err != nil {
			return ChurnCosts{}, err
		}
		t = time.Now()
		if b, err = q.ClaimAndPublish(ctx, 500, 2*time.Second); err != nil || b.Items != 1 {
			return ChurnCosts{}, fmt.Errorf("churn: single claim: %d, %v", b.Items, err)
		}
		times[1] = append(times[1], time.Since(t))
		if wal[1], err = walSince(ctx, pool, lsn, wal[1]); err != nil {
			return ChurnCosts{}, err
		}

		t = time.Now()
		if _, err := notes.DeletePublishedBefore(ctx, time.Now().Add(-24*time.Hour), 1000); err != nil {
			return ChurnCosts{}, err
		}
		times[3] = append(times[3], time.Since(t))
	}
	var c ChurnCosts
	for _, t := range times {
		c.Ms = append(c.Ms, stats.Summarize(t).P50Ms)
	}
	for _, b := range wal {
		c.WALBytes = append(c.WALBytes, stats.Median(b))
	}
	var err error
	if c.ClaimPlanMs, c.ClaimExecMs, err = explainTimes(ctx, pool, `SELECT id FROM notify.queue_items
		WHERE status = 'pending' AND next_attempt_at <= now() AND next_attempt_at > now() - interval '2 seconds'
		ORDER BY next_attempt_at, id LIMIT 500`); err != nil {
		return c, err
	}
	if c.RetentionPlanMs, c.RetentionExecMs, err = explainTimes(ctx, pool, `SELECT id, seq FROM notify.notifications
		WHERE seq > (SELECT COALESCE((SELECT floor FROM notify.retention_marks ORDER BY seq DESC LIMIT 1), 0))
		ORDER BY seq LIMIT 1000`); err != nil {
		return c, err
	}
	return c, nil
}

// walPosition is the server's WAL insert position.
func walPosition(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var lsn string
	if err := pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return "", fmt.Errorf("churn: read the WAL position: %w", err)
	}
	return lsn, nil
}

// walSince appends to bytes the WAL written since lsn (cluster-wide: the
// phase runs alone on its server).
func walSince(ctx context.Context, pool *pgxpool.Pool, lsn string, bytes []float64) ([]float64, error) {
	var n float64
	if err := pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::float8`, lsn).Scan(&n); err != nil {
		return bytes, fmt.Errorf("churn: read the WAL position: %w", err)
	}
	return append(bytes, n), nil
}

// explainTimes runs EXPLAIN (ANALYZE, FORMAT JSON) of query 10 times and
// returns the median planning and execution times.
func explainTimes(ctx context.Context, pool *pgxpool.Pool, query string) (plan, exec float64, err error) {
	var plans, execs []time.Duration
	for range 10 {
		var doc []struct {
			Planning  float64 `json:"Planning Time"`
			Execution float64 `json:"Execution Time"`
		}
		if err := pool.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+query).Scan(&doc); err != nil {
			return 0, 0, fmt.Errorf("churn: explain: %w", err)
		}
		if len(doc) == 1 {
			plans = append(plans, time.Duration(doc[0].Planning*float64(time.Millisecond)))
			execs = append(execs, time.Duration(doc[0].Execution*float64(time.Millisecond)))
		}
	}
	return stats.Summarize(plans).P50Ms, stats.Summarize(execs).P50Ms, nil
}

func (c *ChurnResult) write(w io.Writer, r *Report) {
	kept := "everything published"
	if r.cfg.ChurnKeep > 0 {
		kept = "all but the newest " + num(float64(r.cfg.ChurnKeep))
	}
	fmt.Fprintf(w, "\n5. Churn: the pipeline's statements on a fresh database and after %s notifications passed through (queued, published, read, deleted by retention: %s; %.0f s)\n",
		num(float64(r.cfg.ChurnRows)), kept, c.Seconds)
	rows := rowsOf(c.Ratios, func(i int, r float64) string {
		return fmt.Sprintf("%s\t%.2f ms\t%.2f ms\t%.2f", churnStatements[i], c.Fresh.Ms[i], c.After.Ms[i], r)
	})
	for i, b := range c.After.WALBytes {
		rows = append(rows, fmt.Sprintf("%s: WAL written, commit included\t%s B\t%s B\t%.2f",
			churnStatements[i], num(c.Fresh.WALBytes[i]), num(b), ratio(b, c.Fresh.WALBytes[i])))
	}
	writeTable(w, "statement (median of 40)\tfresh\tafter\tratio", append(rows,
		fmt.Sprintf("claim's index walk: planning / execution\t%.2f / %.2f ms\t%.2f / %.2f ms\t",
			c.Fresh.ClaimPlanMs, c.Fresh.ClaimExecMs, c.After.ClaimPlanMs, c.After.ClaimExecMs),
		fmt.Sprintf("retention's index walk: planning / execution\t%.2f / %.2f ms\t%.2f / %.2f ms\t",
			c.Fresh.RetentionPlanMs, c.Fresh.RetentionExecMs, c.After.RetentionPlanMs, c.After.RetentionExecMs))...)
	if c.Autovacuum == "off" {
		fmt.Fprintf(w, "   the server runs with autovacuum off: the phase vacuumed notify's tables itself every 200,000 notifications (%d times), as autovacuum would\n", c.Vacuums)
	}
	fmt.Fprintf(w, "   notify's tables and indexes: %s MB after; worst ratio %.2f (target <= %.1f: %s)\n",
		num(float64(c.TableBytes)/1e6), slices.Max(append([]float64{0}, c.Ratios...)), c.TargetRatio, verdict(c.TargetMet))
}
