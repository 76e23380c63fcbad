package postgres_test

import (
	"context"
	"testing"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestNotSupersededIsTheFunction: the inbox's written-out supersession
// check (notSuperseded) says what notify.superseded(n) says, for every row
// of a table with keys shared within and across targets, unpublished rows
// and a newer row that cannot be delivered.
func TestNotSupersededIsTheFunction(t *testing.T) {
	db := pgtest.NewQueued(t)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO notify.notifications (message, target_user_id, target_roles, collapse_key)
		 SELECT 'n' || g,
		        (ARRAY['alice', 'bob', NULL, NULL])[1 + g % 4],
		        CASE WHEN g % 4 = 3 THEN (ARRAY['{A}', '{A,B}', '{B}'])[1 + g % 3]::text[] END,
		        CASE WHEN g % 5 <> 0 THEN 'k' || (g % 7) END
		 FROM generate_series(1, 400) g`,
		`UPDATE notify.notifications n SET seq = x.rn, published_at = now()
		 FROM (SELECT id, row_number() OVER (ORDER BY message, id) AS rn FROM notify.notifications) x
		 WHERE n.id = x.id AND x.rn % 10 <> 0`,
		// A newer row that slipped past the constraints supersedes nothing.
		`ALTER TABLE notify.notifications DISABLE TRIGGER USER`,
		`ALTER TABLE notify.notifications DROP CONSTRAINT notifications_target_user_id_check`,
		`INSERT INTO notify.notifications (message, target_user_id, collapse_key, seq, published_at) VALUES ('bad', '', 'k1', 1000, now())`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	var rows, differ, superseded int
	err := db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE notify.superseded(n) = `+postgres.NotSuperseded+`),
		count(*) FILTER (WHERE notify.superseded(n))
		FROM notify.notifications n`).Scan(&rows, &differ, &superseded)
	if err != nil {
		t.Fatal(err)
	}
	if differ != 0 || superseded < 100 || superseded > rows-20 {
		t.Errorf("%d rows, %d superseded by notify.superseded, %d where the written-out check says otherwise", rows, superseded, differ)
	}
}
