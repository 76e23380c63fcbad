package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestMigratorRefusesPreResetDatabase: a database migrated with the twelve
// pre-release migrations (goose table notify_migrations) numbers another
// history; reading it with the new numbering would skip the next migration
// as applied, so every use of the migrator says what to do instead.
func TestMigratorRefusesPreResetDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		version int
		want    string
	}{
		{"at the last pre-reset version the data may stay", 12, "RENAME TO notify_schema_migrations; DELETE FROM public.notify_schema_migrations WHERE version_id > 1;"},
		{"older versions must recreate the schema", 11, "DROP SCHEMA notify CASCADE; DROP TABLE public.notify_migrations;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := pgtest.NewQueued(t)
			pgtest.Exec(t, ctx, db.Pool, `CREATE TABLE public.notify_migrations (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL)`)
			pgtest.Exec(t, ctx, db.Pool, `INSERT INTO public.notify_migrations (version_id, is_applied) SELECT v, true FROM generate_series(0, $1::int) v`, tc.version)
			m, err := postgres.NewMigrator(db.Pool, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, postgres.ErrPreResetSchema) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: %v, want ErrPreResetSchema saying %q", op, err, tc.want)
				}
			}
			_, err = m.Up(ctx)
			check("up", err)
			_, err = m.Down(ctx)
			check("down", err)
			_, err = m.Status(ctx)
			check("status", err)
			_, err = m.Pending(ctx)
			check("pending", err)
		})
	}
}
