package localdb

import (
	"context"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
)

// A standby made with pg_basebackup replays what the primary commits, and
// once promoted takes writes on a new timeline.
func TestStandbyReplaysThenPromotes(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := t.Context()
	primary := startCluster(t, ClusterOptions{DataDir: seededDataDir(t), Fast: true})
	mustExec(t, primary.URL("postgres"), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")
	standby, err := StartStandby(ctx, primary, ClusterOptions{DataDir: dataDir(t), Fast: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop(context.Background()) })
	if n := mustQueryInt(t, standby.URL("postgres"), "SELECT count(*) FROM kept"); n != 1 {
		t.Fatalf("rows on the standby = %d, want 1", n)
	}
	if n := mustQueryInt(t, standby.URL("postgres"), "SELECT pg_is_in_recovery()::int"); n != 1 {
		t.Fatal("the standby is not in recovery")
	}
	mustExec(t, primary.URL("postgres"), "INSERT INTO kept VALUES (2)")
	deadline := time.Now().Add(time.Minute)
	for mustQueryInt(t, standby.URL("postgres"), "SELECT count(*) FROM kept") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not replay the primary's insert within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, standby.URL("postgres"), "INSERT INTO kept VALUES (3)")
	if tli := mustQueryInt(t, standby.URL("postgres"), "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"); tli != 2 {
		t.Errorf("timeline after promotion = %d, want 2", tli)
	}
}
