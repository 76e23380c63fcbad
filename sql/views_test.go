package sqlfiles_test

import (
	"testing"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

var adminViews = []string{"notify.queue_state", "notify.queue_failures", "notify.stream_state"}

// undocumented lists the admin views, and their columns, that have no
// COMMENT (what \d+ shows an admin in psql).
func undocumented(t *testing.T, db *pgtest.DB) []string {
	t.Helper()
	rows, err := db.Pool.Query(t.Context(), `
		SELECT v.name FROM unnest($1::text[]) AS v(name)
		WHERE obj_description(v.name::regclass, 'pg_class') IS NULL
		UNION ALL
		SELECT v.name || '.' || a.attname FROM unnest($1::text[]) AS v(name)
		JOIN pg_attribute a ON a.attrelid = v.name::regclass AND a.attnum > 0 AND NOT a.attisdropped
		WHERE col_description(a.attrelid, a.attnum) IS NULL`, adminViews)
	if err != nil {
		t.Fatalf("read view comments: %v", err)
	}
	defer rows.Close()
	var missing []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		missing = append(missing, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read view comments: %v", err)
	}
	return missing
}

func viewCount(t *testing.T, db *pgtest.DB) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_views WHERE schemaname || '.' || viewname = ANY ($1)`, adminViews).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAdminViewsMigration checks that the views and each of their columns
// are documented, and that rolling every migration back drops them and
// migrating up brings them back.
func TestAdminViewsMigration(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	db := pgtest.New(t)
	if missing := undocumented(t, db); len(missing) > 0 {
		t.Errorf("no COMMENT on %v", missing)
	}
	m, err := postgres.NewMigrator(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for {
		v, err := m.Down(t.Context())
		if err != nil {
			t.Fatalf("down: %v", err)
		}
		if v <= 1 {
			break
		}
	}
	if n := viewCount(t, db); n != 0 {
		t.Errorf("after rolling back to nothing, %d admin views remain", n)
	}
	if _, err := m.Up(t.Context()); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if n := viewCount(t, db); n != len(adminViews) {
		t.Errorf("after up, %d admin views, want %d", n, len(adminViews))
	}
}
