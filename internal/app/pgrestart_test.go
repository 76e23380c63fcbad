package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// privateCluster starts a PostgreSQL server of the test's own, so the test
// can stop and restart it.
func privateCluster(t *testing.T) *localdb.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := localdb.StartCluster(ctx, localdb.ClusterOptions{DataDir: clusterDataDir(t, "notifyd-pgrestart-"), Fast: true})
	if err != nil {
		t.Fatalf("start a private PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE notify"); err != nil {
		t.Fatal(err)
	}
	return c
}

// clusterDataDir is a data directory path for a private server, removed when
// the test ends.
func clusterDataDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres account must reach it when we are root
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir + "/data"
}

func readyStatus(t *testing.T, base string) int {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitReady(t *testing.T, base string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for readyStatus(t, base) != want {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPostgresRestartUnderLoad: the database server restarts while
// producers insert. /readyz says not ready meanwhile; the pool and the
// listener reconnect; the stream receives every committed notification once;
// nothing is left processing.
func TestPostgresRestartUnderLoad(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	cluster := privateCluster(t)
	url := cluster.URL("notify")
	env := apptest.NewEnv(t) // for its issuer; the server uses the private cluster
	cfg := env.Config()
	cfg.DatabaseURL = url
	cfg.Worker.Lease = 2 * time.Second
	srv := env.Start(cfg)
	waitReady(t, srv.URL(), http.StatusOK, 10*time.Second)
	r := apptest.Open(t, srv.URL(), env.Token("alice"), "")

	ctx, cancel := context.WithCancel(context.Background())
	producer, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var mu sync.Mutex
	committed := map[string]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // insert one at a time; a failed insert is retried under a new name
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			msg := fmt.Sprintf("n%05d", i)
			if _, err := producer.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ($1)`, msg); err == nil {
				mu.Lock()
				committed[msg] = true
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(committed) }
	for count() < 100 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := cluster.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv.URL(), http.StatusServiceUnavailable, 15*time.Second)
	if err := cluster.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv.URL(), http.StatusOK, 30*time.Second)
	before := count()
	for count() < before+100 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	want := count()
	seen := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < want && time.Now().Before(deadline) {
		m, ok := r.NextOfType("notification", time.Until(deadline))
		if !ok {
			t.Fatalf("stream ended after %d of %d: %v", len(seen), want, r.Err())
		}
		seen[m.Notification().Message]++
	}
	for msg := range committed {
		if seen[msg] != 1 {
			t.Errorf("%s received %d times", msg, seen[msg])
		}
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var stuck int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM notify.queue_items WHERE status <> 'sent'`).Scan(&stuck); err != nil || stuck != 0 {
		t.Errorf("%d items not sent (%v)", stuck, err)
	}
}
