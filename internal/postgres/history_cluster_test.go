package postgres_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
)

// These tests do to a database what operators do: restore a dump of it
// elsewhere or over it, promote its replica after the primary died. Each
// runs private clusters (internal/localdb) and notifyd's own code on them:
// the migrations, the queue pool's history hook, the publish.

// clusterDir is a data directory path the server account can reach (as
// root, PostgreSQL runs as postgres, which must pass through t.TempDir()'s
// parent, 0700 by default).
func clusterDir(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, name)
}

func startPrivateCluster(t *testing.T, name string) *localdb.Cluster {
	t.Helper()
	c, err := localdb.StartCluster(t.Context(), localdb.ClusterOptions{DataDir: clusterDir(t, name), Fast: true, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

// notifydPool opens the pool notifyd's workers use on url (with the
// history hook, logging to logs), migrating the database first.
func notifydPool(t *testing.T, ctx context.Context, url string, logs *bytes.Buffer) *pgxpool.Pool {
	t.Helper()
	log := slog.New(slog.NewTextHandler(&syncWriter{t: t, buf: logs}, nil))
	pool, err := postgres.OpenPool(ctx, url, postgres.PoolConfig{MaxConns: 4, AfterConnect: postgres.HistoryHook(log)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m, err := postgres.NewMigrator(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	// What a worker does as it starts.
	e, err := postgres.NewQueue(pool).EnterHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	postgres.LogEntered(ctx, log, e)
	return pool
}

// syncWriter copies the log to the test's output and to buf.
type syncWriter struct {
	t   *testing.T
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return w.buf.Write(p)
}

func createDatabase(t *testing.T, ctx context.Context, c *localdb.Cluster, name string) string {
	t.Helper()
	if _, err := connect(t, ctx, c.URL("postgres")).Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return c.URL(name)
}

func run(t *testing.T, ctx context.Context, name string, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

func histories(t *testing.T, ctx context.Context, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT reason FROM notify.histories ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// pg_dump of a live database, restored into a new database on another
// cluster and then over the original: notifyd on either never reuses a seq
// the original numbered after the dump, and a client resuming from one of
// them is told.
func TestRestoredDumpEntersANewHistory(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	origin, copyCluster := startPrivateCluster(t, "origin"), startPrivateCluster(t, "copy")

	var logs bytes.Buffer
	url := createDatabase(t, ctx, origin, "notify")
	pool := notifydPool(t, ctx, url, &logs)
	if last := publishN(t, ctx, pool, 39, "before the dump"); last != 39 {
		t.Fatalf("last seq %d, want 39", last)
	}
	dump := filepath.Join(t.TempDir(), "notify.dump")
	run(t, ctx, origin.Tool("pg_dump"), "-Fc", "-f", dump, "-d", url)
	// The original goes on: clients see seqs 40-48, which the dump lacks.
	if last := publishN(t, ctx, pool, 9, "after the dump"); last != 48 {
		t.Fatalf("last seq %d, want 48", last)
	}

	t.Run("into a new database on another cluster", func(t *testing.T) {
		copyURL := createDatabase(t, ctx, copyCluster, "notify_restored")
		run(t, ctx, copyCluster.Tool("pg_restore"), "--exit-on-error", "-d", copyURL, dump)
		var copyLogs bytes.Buffer
		cp := notifydPool(t, ctx, copyURL, &copyLogs)
		if got := histories(t, ctx, cp); strings.Join(got, ",") != "first,cluster" {
			t.Fatalf("histories on the copy: %v, want first,cluster", got)
		}
		if !strings.Contains(copyLogs.String(), "level=WARN") ||
			!strings.Contains(copyLogs.String(), "seqs continue from 2000000000") ||
			!strings.Contains(copyLogs.String(), "in (39, 2000000000)") {
			t.Errorf("no warning naming the new seqs:\n%s", copyLogs.String())
		}
		checkNewHistory(t, ctx, cp, 39)
	})

	t.Run("over the original database", func(t *testing.T) {
		pool.Close()
		run(t, ctx, origin.Tool("pg_restore"), "--clean", "--if-exists", "--exit-on-error", "-d", url, dump)
		var againLogs bytes.Buffer
		again := notifydPool(t, ctx, url, &againLogs)
		if got := histories(t, ctx, again); strings.Join(got, ",") != "first,restored" {
			t.Fatalf("histories after restoring over the database: %v, want first,restored", got)
		}
		checkNewHistory(t, ctx, again, 39)
	})
}

// checkNewHistory publishes on a database that entered a new history after
// its head (resumedAfter, below the 48 seqs the lost history numbered):
// new seqs start at 2,000,000,000, and resume points the lost history
// numbered are reported lost.
func checkNewHistory(t *testing.T, ctx context.Context, pool *pgxpool.Pool, resumedAfter int64) {
	t.Helper()
	first := publishN(t, ctx, pool, 5, "on the new history") - 4
	if first != 2_000_000_000 {
		t.Fatalf("first seq on the new history %d, want 2000000000 (no seq the lost history numbered)", first)
	}
	var reused int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notify.notifications WHERE seq > $1 AND seq < $2`, resumedAfter, first).Scan(&reused); err != nil || reused != 0 {
		t.Fatalf("%d seqs numbered in the hole (%v)", reused, err)
	}
	resumeStates(t, ctx, pool, map[int64]postgres.ResumePoint{
		resumedAfter: postgres.ResumeOK, 46: postgres.ResumeLost, 48: postgres.ResumeLost,
		first: postgres.ResumeOK, first + 4: postgres.ResumeOK, first + 5: postgres.ResumeAhead})
	head, err := postgres.NewNotifications(pool).Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hole, lost := head.Holes.Lost(46); !lost || hole != (postgres.Hole{After: resumedAfter, First: first}) {
		t.Errorf("head %+v: resume point 46 not in the hole (%d, %d)", head, resumedAfter, first)
	}
}

// A streaming replica promoted after its primary died with commits it never
// received: notifyd on it enters a new history (the timeline changed) and
// numbers nothing the old primary numbered.
func TestPromotedReplicaEntersANewHistory(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	primary := startPrivateCluster(t, "primary")
	var logs bytes.Buffer
	url := createDatabase(t, ctx, primary, "notify")
	pool := notifydPool(t, ctx, url, &logs)
	publishN(t, ctx, pool, 39, "replicated")

	standby, err := localdb.StartStandby(ctx, primary, localdb.ClusterOptions{DataDir: clusterDir(t, "standby"), Fast: true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop(context.Background()) })
	var lsn string
	if err := pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	standbyConn := connect(t, ctx, standby.URL("notify"))
	testkit.Eventually(t, time.Minute, "the standby to replay the first 39", func() bool {
		var caught bool
		err := standbyConn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&caught)
		return err == nil && caught
	})
	// The standby falls behind (here: it is down), the primary commits
	// 40-48, which clients see, and dies.
	standbyConn.Close(ctx)
	if err := standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if last := publishN(t, ctx, pool, 9, "lost with the primary"); last != 48 {
		t.Fatalf("last seq on the primary %d, want 48", last)
	}
	pool.Close()
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}

	var promotedLogs bytes.Buffer
	promoted := notifydPool(t, ctx, standby.URL("notify"), &promotedLogs)
	if got := histories(t, ctx, promoted); strings.Join(got, ",") != "first,timeline" {
		t.Fatalf("histories on the promoted replica: %v, want first,timeline", got)
	}
	var timelines string
	if err := promoted.QueryRow(ctx, `SELECT string_agg(timeline::text, ',' ORDER BY id) FROM notify.histories`).Scan(&timelines); err != nil || timelines != "1,2" {
		t.Fatalf("timelines recorded %q (%v), want 1,2", timelines, err)
	}
	if !strings.Contains(promotedLogs.String(), "level=WARN") || !strings.Contains(promotedLogs.String(), "timeline changed") {
		t.Errorf("no warning on the promoted replica:\n%s", promotedLogs.String())
	}
	checkNewHistory(t, ctx, promoted, 39)
}
