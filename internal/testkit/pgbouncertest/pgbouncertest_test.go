package pgbouncertest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/testkit/pgbouncertest"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestBouncerIsTransactionPoolerWithDefaults pins what the PgBouncer tests
// rely on: the bouncer pools by transaction, and it refuses startup
// parameters it does not know, as PgBouncer's default configuration does.
func TestBouncerIsTransactionPoolerWithDefaults(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	b := pgbouncertest.Start(t)
	ctx := context.Background()

	admin, err := pgx.Connect(ctx, b.URL("pgbouncer"))
	if err != nil {
		t.Fatalf("connect to the admin console: %v", err)
	}
	defer admin.Close(ctx)
	rows, err := admin.Query(ctx, "SHOW CONFIG", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("SHOW CONFIG: %v", err)
	}
	config := map[string]string{}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		if len(vals) >= 2 {
			key, _ := vals[0].(string)
			value, _ := vals[1].(string)
			config[key] = value
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if config["pool_mode"] != "transaction" || config["ignore_startup_parameters"] != "" {
		t.Fatalf("pool_mode %q, ignore_startup_parameters %q; want transaction and none",
			config["pool_mode"], config["ignore_startup_parameters"])
	}

	_, err = pgx.Connect(ctx, b.URL(db.Name)+"&jit=off")
	if err == nil || !strings.Contains(err.Error(), "unsupported startup parameter") {
		t.Fatalf("connecting with the startup parameter jit: %v; want PgBouncer to refuse it", err)
	}
}
