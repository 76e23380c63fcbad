package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// privateStandby starts a streaming replica of primary (pg_basebackup) and
// returns it with a superuser connection to its copy of database notify.
func privateStandby(t *testing.T, primary *localdb.Cluster) (*localdb.Cluster, *pgx.Conn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "notifyd-standby-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres account must reach it when we are root
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standby, err := localdb.StartStandby(ctx, primary, localdb.ClusterOptions{DataDir: filepath.Join(dir, "data"), Fast: true})
	if err != nil {
		t.Fatalf("start a standby: %v", err)
	}
	t.Cleanup(func() { _ = standby.Stop(context.Background()) })
	conn, err := pgx.Connect(ctx, standby.URL("notify"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return standby, conn
}

// replicaReads returns the node's notifyd_replica_reads_total samples,
// "read source reason" → count.
func replicaReads(t *testing.T, base string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.Lines(scrape(t, base)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "notifyd_replica_reads_total{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		var v float64
		fmt.Sscan(value, &v)
		kv := map[string]string{}
		for _, l := range strings.Split(labels, ",") {
			k, val, _ := strings.Cut(l, "=")
			kv[k] = strings.Trim(val, `"`)
		}
		out[kv["read"]+" "+kv["source"]+" "+kv["reason"]] = v
	}
	return out
}

// readyNotes returns /readyz's status code and notes.
func readyNotes(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Notes map[string]string `json:"notes"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/readyz %s: %v", b, err)
	}
	return resp.StatusCode, body.Notes
}

// resumeSeqs resumes alice's stream after seq `after` on base and returns
// the seqs of the first n notifications it gets.
func resumeSeqs(t *testing.T, base, token string, after, n int) []int64 {
	t.Helper()
	r := apptest.Open(t, base, token, fmt.Sprint(after))
	defer r.Close()
	var seqs []int64
	for _, m := range r.Notifications(n, 30*time.Second) {
		seqs = append(seqs, m.Notification().Seq)
	}
	return seqs
}

// wantRun fails unless seqs are from+1 … to, in order.
func wantRun(t *testing.T, seqs []int64, from, to int64) {
	t.Helper()
	ok := int64(len(seqs)) == to-from
	for i := 0; ok && i < len(seqs); i++ {
		ok = seqs[i] == from+1+int64(i)
	}
	if !ok {
		t.Fatalf("replayed %v, want %d … %d in order", seqs, from+1, to)
	}
}

// TestReplicaServesReplays: nodes with DATABASE_REPLICA_URL on a private
// primary and its standby. A resume older than the node's window replays
// from the replica when it is caught up; with its replay paused, or with
// it stopped, from the primary, every notification in order either way;
// /readyz stays ready and notes the replica's state.
func TestReplicaServesReplays(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	primary := privateCluster(t)
	env := apptest.NewEnv(t) // for its issuer; the nodes use the private clusters
	start := func(wait time.Duration, replicaURL string) *app.App {
		cfg := env.Config()
		cfg.DatabaseURL, cfg.DatabaseReplicaURL, cfg.ReplicaWait = primary.URL("notify"), replicaURL, wait
		return env.Start(cfg)
	}
	// The first node migrates and publishes 30 notifications before the
	// standby is made; they are older than any later node's window.
	first := start(0, "")
	token := env.Token("alice")
	live := apptest.Open(t, first.URL(), token, "")
	producer, err := pgxpool.New(ctx, primary.URL("notify"))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	insert := func(n int) {
		t.Helper()
		if _, err := producer.Exec(ctx, `INSERT INTO notify.notifications (message)
			SELECT 'n' || g FROM generate_series(1, $1::int) g`, n); err != nil {
			t.Fatal(err)
		}
		live.Notifications(n, 30*time.Second)
	}
	insert(30)
	standby, standbyConn := privateStandby(t, primary)
	replicaURL := standby.URL("notify")

	// Patient: waits as long as the standby takes to replay the fence.
	patient := start(time.Hour, replicaURL)
	wantRun(t, resumeSeqs(t, patient.URL(), token, 5, 25), 5, 30)
	reads := replicaReads(t, patient.URL())
	if reads["replay replica caught_up"]+reads["replay replica waited"] != 1 || len(reads) != 1 {
		t.Fatalf("replica reads %v, want one replay from the replica", reads)
	}
	req, err := http.NewRequest(http.MethodGet, patient.URL()+"/api/notifications?limit=100", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	page, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Notifications []struct{ Seq int64 } `json:"notifications"`
	}
	err = json.NewDecoder(page.Body).Decode(&body)
	page.Body.Close()
	if err != nil || len(body.Notifications) != 30 || body.Notifications[0].Seq != 30 {
		t.Fatalf("history page: %d notifications (%v)", len(body.Notifications), err)
	}
	if reads := replicaReads(t, patient.URL()); reads["history replica caught_up"]+reads["history replica waited"] != 1 {
		t.Fatalf("replica reads %v, want a history page from the replica", reads)
	}
	if code, notes := readyNotes(t, patient.URL()); code != http.StatusOK || !strings.HasPrefix(notes["replica"], "in use") {
		t.Fatalf("/readyz %d, notes %v: want ready, replica in use", code, notes)
	}

	// Lagging: the standby stops replaying, 5 more are published, which a
	// node that waits 10 ms has handed to its streams. A replay there that
	// read them from the standby would lack them; it reads the primary.
	impatient := start(10*time.Millisecond, replicaURL)
	impatientLive := apptest.Open(t, impatient.URL(), token, "")
	if _, err := standbyConn.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	insert(5)
	impatientLive.Notifications(5, 30*time.Second)
	wantRun(t, resumeSeqs(t, impatient.URL(), token, 5, 30), 5, 35)
	if reads := replicaReads(t, impatient.URL()); reads["replay primary lagging"] != 1 || len(reads) != 1 {
		t.Fatalf("replica reads %v, want one replay from the primary (lagging)", reads)
	}

	// Down: the standby stops. The replay comes from the primary, and the
	// node stays ready, with a note.
	if err := standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	insert(2)
	wantRun(t, resumeSeqs(t, impatient.URL(), token, 5, 32), 5, 37)
	if reads := replicaReads(t, impatient.URL()); reads["replay primary down"] != 1 {
		t.Fatalf("replica reads %v, want a replay from the primary (down)", reads)
	}
	if code, notes := readyNotes(t, impatient.URL()); code != http.StatusOK || !strings.Contains(notes["replica"], "cannot be reached") {
		t.Fatalf("/readyz %d, notes %v: want ready, replica cannot be reached", code, notes)
	}
}

// TestNoReplicaNoChange: without DATABASE_REPLICA_URL a replay from the
// table counts no replica read and /readyz says nothing of a replica.
func TestNoReplicaNoChange(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	first := env.Start(env.Config())
	token := env.Token("alice")
	live := apptest.Open(t, first.URL(), token, "")
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message)
		SELECT 'n' || g FROM generate_series(1, 12) g`); err != nil {
		t.Fatal(err)
	}
	live.Notifications(12, 30*time.Second)
	second := env.Start(env.Config()) // its window starts after them
	wantRun(t, resumeSeqs(t, second.URL(), token, 2, 10), 2, 12)
	if resumes := metricValue(t, scrape(t, second.URL()), `notifyd_stream_resumes_total{source="database"}`); resumes != 1 {
		t.Fatalf("%v resumes from the database, want 1", resumes)
	}
	if reads := replicaReads(t, second.URL()); len(reads) != 0 {
		t.Fatalf("replica reads %v without a replica", reads)
	}
	if _, notes := readyNotes(t, second.URL()); notes["replica"] != "" {
		t.Fatalf("/readyz notes %v without a replica", notes)
	}
}
