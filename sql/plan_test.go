package sqlfiles_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// planCase says how a file must read the tables when sent items are most of
// the queue: the indexes its plans must use, and the tables it may scan
// whole because no index can answer it (see the Cost note in its header).
type planCase struct {
	file     string
	vars     []string
	use      []string
	scanOK   []string
	mutating bool // changes the big database: run last
}

var planCases = []planCase{
	{file: "queue_counts.sql", use: []string{"queue_items_claim_idx", "queue_items_processing_idx", "queue_items_failed_idx"}, scanOK: []string{"queue_items"}},
	{file: "due_pending.sql", use: []string{"queue_items_claim_idx", "notifications_pkey"}},
	{file: "stuck_processing.sql", use: []string{"queue_items_processing_idx"}},
	{file: "failures_by_error.sql", use: []string{"queue_items_failed_idx"}},
	{file: "retry_failed_item.sql", vars: []string{"id=1"}, use: []string{"queue_items_pkey"}},
	{file: "retry_failed_matching.sql", vars: []string{"error_like=no such error"}, use: []string{"queue_items_failed_idx"}},
	{file: "retry_failed_all.sql", use: []string{"queue_items_failed_idx"}, mutating: true},
	{file: "cancel_pending_item.sql", vars: []string{"id=1"}, use: []string{"queue_items_pkey"}},
	{file: "cancel_pending_matching.sql", vars: []string{"module=no such module"}, use: []string{"queue_items_claim_idx"}},
	{file: "notifications_for_user.sql", vars: []string{"user_id=user5", "roles={ADMIN}"}, scanOK: []string{"notifications"}},
	{file: "throughput_per_minute.sql", use: []string{"notifications_published_at_idx", "queue_items_failed_idx"}, scanOK: []string{"notifications"}},
	{file: "stream_positions.sql", use: []string{"notifications_seq_key"}},
	{file: "user_inbox.sql", vars: []string{"user_id=user5", "roles={ADMIN}"}, use: []string{"notifications_target_user_idx", "notifications_broadcast_idx"}},
	{file: "unread_by_user.sql", scanOK: []string{"notifications", "read_cursors", "read_marks", "preferences", "inbox_states"}},
	{file: "inbox_states.sql", vars: []string{"user_id=user5"}, use: []string{"inbox_states_pkey"}},
	{file: "unsnooze_user.sql", vars: []string{"user_id=user5"}, use: []string{"inbox_states_pkey"}},
	{file: "action_clicks.sql", scanOK: []string{"inbox_states"}},
}

var fullScan = regexp.MustCompile(`Seq Scan on (\w+)`)

// autoExplain makes the server send every plan to psql as a NOTICE.
var autoExplain = "PGOPTIONS=-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0" +
	" -c auto_explain.log_level=notice -c auto_explain.log_nested_statements=on -c client_min_messages=notice"

// TestPlansUseTheIndexes runs every file on a queue of 100,000 sent items
// and a few hundred others, and reads its plans (auto_explain): the
// pending, processing and failed items must be found through their
// partial indexes, not by scanning the sent ones.
func TestPlansUseTheIndexes(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	files := sqlFiles(t)
	for _, c := range planCases {
		files = slices.DeleteFunc(files, func(f string) bool { return f == c.file })
	}
	if len(files) > 0 {
		t.Errorf("no plan case for %v: add them to planCases", files)
	}

	db := pgtest.New(t)
	ctx := t.Context()
	var super bool
	if err := db.Pool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("loading auto_explain for the test's sessions needs a superuser")
	}
	seedBig(t, db)

	cases := slices.Clone(planCases)
	slices.SortStableFunc(cases, func(a, b planCase) int {
		switch {
		case a.mutating == b.mutating:
			return 0
		case a.mutating:
			return 1
		}
		return -1
	})
	for _, c := range cases {
		out, err := runPsql(t, db.URL, c.file, []string{autoExplain}, c.vars...)
		if strings.Contains(out.stderr, `"auto_explain"`) {
			t.Skipf("auto_explain is not installed: %s", out.stderr)
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.file, err, out.stderr)
		}
		if !strings.Contains(out.stderr, "Query Text:") {
			t.Fatalf("%s: no plans on stderr:\n%s", c.file, out.stderr)
		}
		for _, idx := range c.use {
			if !strings.Contains(out.stderr, " on "+idx+" ") && !strings.Contains(out.stderr, " using "+idx+" ") {
				t.Errorf("%s: no plan uses %s:\n%s", c.file, idx, out.stderr)
			}
		}
		for _, m := range fullScan.FindAllStringSubmatch(out.stderr, -1) {
			if table := m[1]; table != "stream_head" && !slices.Contains(c.scanOK, table) {
				t.Errorf("%s: scans all of %s:\n%s", c.file, table, out.stderr)
			}
		}
	}
}

// seedBig fills db with 100,000 published notifications and 300 others,
// a third each pending (half of them due), processing and failed. The
// triggers are off: the queue items are written here, with their states.
func seedBig(t *testing.T, db *pgtest.DB) {
	t.Helper()
	_, err := db.Pool.Exec(t.Context(), `BEGIN;
		SET LOCAL session_replication_role = replica;
		INSERT INTO notify.notifications (seq, message, module, target_user_id, created_at, published_at)
		SELECT g, 'message ' || g, 'mod' || g % 10, 'user' || g % 1000,
		       now() - interval '2 days' + g * interval '1 second', now() - interval '2 days' + g * interval '1 second' + interval '20 ms'
		FROM generate_series(1, 100000) g;
		INSERT INTO notify.queue_items (notification_id, status, attempts, next_attempt_at, created_at, updated_at, sent_at)
		SELECT id, 'sent', 1, created_at, created_at, published_at, published_at FROM notify.notifications;
		INSERT INTO notify.notifications (message, module, target_roles, created_at)
		SELECT 'open ' || g, 'mod' || g % 10, CASE WHEN g % 2 = 0 THEN '{ADMIN}'::text[] END, now() - g * interval '1 second'
		FROM generate_series(1, 300) g;
		INSERT INTO notify.queue_items (notification_id, status, attempts, next_attempt_at, locked_by, locked_at, last_error, created_at, updated_at)
		SELECT n.id, s.status, CASE s.status WHEN 'failed' THEN 3 ELSE 1 END,
		       n.created_at + CASE WHEN n.rn % 2 = 0 THEN interval '1 hour' ELSE interval '0' END,
		       CASE s.status WHEN 'processing' THEN 'w-' || n.rn % 4 END,
		       CASE s.status WHEN 'processing' THEN now() - interval '10 minutes' END,
		       CASE s.status WHEN 'failed' THEN 'boom ' || n.rn % 3 END,
		       n.created_at, n.created_at
		FROM (SELECT id, created_at, row_number() OVER (ORDER BY created_at) AS rn
		      FROM notify.notifications WHERE seq IS NULL) n,
		     LATERAL (SELECT (ARRAY['pending', 'processing', 'failed'])[n.rn % 3 + 1] AS status) s;
		UPDATE notify.stream_head SET last_seq = 100000, published_at = now();
		COMMIT;
		ANALYZE notify.notifications;
		ANALYZE notify.queue_items;`)
	if err != nil {
		t.Fatalf("seed 100k items: %v", err)
	}
}
