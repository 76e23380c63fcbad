package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestReadyzNotesAHeldSnapshot: a session holding a snapshot (a forgotten
// BEGIN, a long report, pg_dump) keeps vacuum from removing dead rows; the
// node says so in /readyz (200 still: delivery goes on) and in the metric
// notifyd_db_oldest_snapshot_age_seconds, and stops saying so once the
// transaction ends.
func TestReadyzNotesAHeldSnapshot(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.SnapshotWarnAge = 300 * time.Millisecond
	srv := env.Start(cfg)
	ctx := context.Background()

	type readyz struct {
		Status string            `json:"status"`
		Notes  map[string]string `json:"notes"`
	}
	probe := func() (int, readyz, string) {
		t.Helper()
		resp, err := http.Get(srv.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r readyz
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("/readyz: %s: %v", b, err)
		}
		return resp.StatusCode, r, string(b)
	}
	// The node is ready once its listener has heard its own probe.
	code, r, body := probe()
	for deadline := time.Now().Add(10 * time.Second); code != 200 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		code, r, body = probe()
	}
	if code != 200 || r.Notes != nil {
		t.Fatalf("before any snapshot: %d %s", code, body)
	}

	cfgConn, err := pgx.ParseConfig(env.DB.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfgConn.RuntimeParams["application_name"] = "nightly-report-secret-name"
	holder, err := pgx.ConnectConfig(ctx, cfgConn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM notify.notifications`); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		code, r, body := probe()
		if note := r.Notes["snapshot"]; note != "" {
			if code != 200 || r.Status != "ready" {
				t.Fatalf("an old snapshot made the node unready: %d %s", code, body)
			}
			if !strings.Contains(note, "snapshot") || strings.Contains(body, "nightly-report") {
				t.Fatalf("note %q (body %s): want the age and pid, never the application name", note, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot note while one is held: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if age := metricValue(t, scrape(t, srv.URL()), "notifyd_db_oldest_snapshot_age_seconds"); age < 0.3 {
		t.Errorf("oldest snapshot age metric %v, want at least 0.3 s", age)
	}

	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		code, r, body := probe()
		if code == 200 && r.Notes == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the note stayed after the transaction ended: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
