package localdb

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/testkit"
)

func startCluster(t *testing.T, opts ClusterOptions) *Cluster {
	t.Helper()
	opts.Logger = testLogger(t)
	c, err := StartCluster(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
}

func TestClusterRestartAndKill(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	dir := seededDataDir(t)
	c := startCluster(t, ClusterOptions{DataDir: dir, Fast: true})
	url := c.URL("postgres")
	mustExec(t, url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")

	port := c.Port()
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Errorf("port after restart = %d, want %d", c.Port(), port)
	}
	if n := mustQueryInt(t, url, "SELECT count(*) FROM kept"); n != 1 {
		t.Errorf("rows after restart = %d, want 1", n)
	}

	pid := c.PID()
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Errorf("postmaster %d still running after Kill", pid)
	}
	if c.PID() != 0 {
		t.Errorf("PID after Kill = %d, want 0", c.PID())
	}
	if _, err := queryInt(t, url, "SELECT 1"); err == nil {
		t.Error("connected after Kill")
	}

	// Crash recovery brings the data back.
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n := mustQueryInt(t, url, "SELECT count(*) FROM kept"); n != 1 {
		t.Errorf("rows after crash recovery = %d, want 1", n)
	}

	// A stopped cluster starts again from its data, without initdb.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	again := startCluster(t, ClusterOptions{DataDir: dir, Fast: true})
	if n := mustQueryInt(t, again.URL("postgres"), "SELECT count(*) FROM kept"); n != 1 {
		t.Errorf("rows after a new StartCluster = %d, want 1", n)
	}
}

func TestStartClusterFailureShowsServerLog(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = StartCluster(t.Context(), ClusterOptions{
		DataDir: seededDataDir(t),
		Port:    l.Addr().(*net.TCPAddr).Port,
		Logger:  testLogger(t),
	})
	if err == nil {
		t.Fatal("started on a port already in use")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "could not bind") {
		t.Errorf("error does not show the server log:\n%v", err)
	}
}

func TestStartClusterRootNeedsReachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the data dir to another account")
	}
	t.Parallel()
	locked := filepath.Join(t.TempDir(), "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := StartCluster(t.Context(), ClusterOptions{DataDir: filepath.Join(locked, "pg")})
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+locked) {
		t.Errorf("error = %v, want one naming %s", err, locked)
	}
}
