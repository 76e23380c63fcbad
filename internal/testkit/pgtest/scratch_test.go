package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

func TestScratchHasItsSettingsAndIsDroppedOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := pgtest.CreateScratch(ctx, pgtest.ServerURL(), pgtest.ScratchConfig{Prefix: "pgtest_scratch",
		Settings: map[string]string{"work_mem": "7MB", "app.note": "it's quoted"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Drop() })
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatalf("connect to the scratch database: %v", err)
	}
	var db, workMem, note string
	err = conn.QueryRow(ctx, "SELECT current_database(), current_setting('work_mem'), current_setting('app.note')").Scan(&db, &workMem, &note)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if db != s.Name || workMem != "7MB" || note != "it's quoted" {
		t.Errorf("connected to %q with work_mem %q, app.note %q; want %q, 7MB, it's quoted", db, workMem, note, s.Name)
	}

	if err := s.Drop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(); err != nil {
		t.Errorf("a second Drop: %v", err)
	}
	if exists(t, ctx, s.Name) {
		t.Errorf("database %s is still there after Drop", s.Name)
	}
}

func TestNewScratchCopiesTheTemplateAndDropsWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("test", func(t *testing.T) {
		s := pgtest.NewScratch(t, pgtest.ScratchConfig{Prefix: "pgtest_scratch", Template: "template0"})
		name = s.Name
		if !exists(t, t.Context(), name) {
			t.Fatalf("database %s was not created", name)
		}
	})
	if exists(t, t.Context(), name) {
		t.Errorf("database %s is still there after its test ended", name)
	}
}

func TestCreateScratchRefusesABadSetting(t *testing.T) {
	t.Parallel()
	_, err := pgtest.CreateScratch(t.Context(), pgtest.ServerURL(), pgtest.ScratchConfig{Prefix: "pgtest_scratch",
		Settings: map[string]string{"no_such_setting": "1"}})
	if err == nil {
		t.Fatal("created a database with a setting PostgreSQL does not have")
	}
}

func exists(t *testing.T, ctx context.Context, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestWithDatabaseKeepsEverythingButTheDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/other?sslmode=disable"},
		{"postgresql://u:p%40ss@h:6432/db?sslmode=verify-full&application_name=x", "postgresql://u:p%40ss@h:6432/other?sslmode=verify-full&application_name=x"},
		{"postgres://h", "postgres://h/other"},
		{"host=h user=u dbname=db sslmode=require", "host=h user=u dbname=db sslmode=require dbname='other'"},
	} {
		got, err := pgtest.WithDatabase(tc.in, "other")
		if err != nil || got != tc.want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// A keyword/value string's later dbname wins, however the name is spelt.
	got, err := pgtest.WithDatabase("host=h dbname=db", `o'd\d`)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database != `o'd\d` {
		t.Errorf("%q parses to database %q, want o'd\\d", got, cfg.Database)
	}
	if _, err := pgtest.WithDatabase("postgres://h:notaport/db", "other"); err == nil {
		t.Error("WithDatabase accepted a connection string pgx cannot parse")
	}
}
