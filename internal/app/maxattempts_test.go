package app

import (
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestAgreeMaxAttempts: the attempt limit is one setting for every node,
// held by the database; a starting node never rewrites it, so nodes
// configured differently cannot overwrite each other.
func TestAgreeMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, q := pgtest.NewQueue(t)
	limit := func() int {
		t.Helper()
		n, err := q.MaxAttempts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := limit(); n != 3 {
		t.Fatalf("max attempts on a new database: %d, want 3", n)
	}
	if err := agreeMaxAttempts(ctx, q, 0, false); err != nil || limit() != 3 {
		t.Fatalf("unset: %v, limit %d; want nil and the database's 3 left alone", err, limit())
	}
	if err := agreeMaxAttempts(ctx, q, 3, false); err != nil {
		t.Fatalf("same as the database's: %v", err)
	}
	err := agreeMaxAttempts(ctx, q, 5, false)
	if err == nil || !strings.Contains(err.Error(), "NOTIFY_MAX_ATTEMPTS is 5 but the database's max attempts") ||
		!strings.Contains(err.Error(), "notifyd migrate up --max-attempts 5") {
		t.Fatalf("another value than the database's: %v, want a refusal saying how to change it", err)
	}
	if n := limit(); n != 3 {
		t.Fatalf("after a node with 5 refused to start: limit %d, want 3", n)
	}
	if err := agreeMaxAttempts(ctx, q, 5, true); err != nil || limit() != 5 {
		t.Fatalf("seeding the database this start created: %v, limit %d; want 5", err, limit())
	}
}

// TestWithDefaultsFillsEverySetting: flags take their defaults from
// Config{}.WithDefaults(), so it must leave no setting a flag binds unset.
func TestWithDefaultsFillsEverySetting(t *testing.T) {
	t.Parallel()
	d := Config{}.WithDefaults()
	for name, unset := range map[string]bool{
		"Addr": d.Addr == "", "Workers": d.Workers == 0, "AdminRoles": len(d.AdminRoles) == 0, "Scopes": len(d.Scopes) == 0,
		"SessionTTL": d.SessionTTL == 0, "SessionRefresh": d.SessionRefresh == 0, "MaxStreams": d.MaxStreams == 0,
		"MaxStreamsPerUser": d.MaxStreamsPerUser == 0, "PublishRate": d.PublishRate == 0, "PublishBurst": d.PublishBurst == 0,
		"AdminPublishRate": d.AdminPublishRate == 0, "AdminPublishBurst": d.AdminPublishBurst == 0, "LoginRate": d.LoginRate == 0,
		"LoginBurst": d.LoginBurst == 0, "MaxPendingSignIns": d.MaxPendingSignIns == 0, "AuthStatementTimeout": d.AuthStatementTimeout == 0,
		"MaxBodyBytes": d.MaxBodyBytes == 0, "RequestTimeout": d.RequestTimeout == 0, "Retention": d.Retention == 0,
		"ReplicaWait": d.ReplicaWait == 0, "SnapshotWarnAge": d.SnapshotWarnAge == 0, "OIDC.RolesClaim": d.OIDC.RolesClaim == "",
		"OIDC.UserClaim": d.OIDC.UserClaim == "", "OIDC.NameClaim": d.OIDC.NameClaim == "", "OIDC.KeyRefetchCooldown": d.OIDC.KeyRefetchCooldown == 0,
		"Worker.PollInterval": d.Worker.PollInterval == 0, "Worker.BatchSize": d.Worker.BatchSize == 0,
		"Stream.HeartbeatInterval": d.Stream.HeartbeatInterval == 0, "Stream.ConnTimeout": d.Stream.ConnTimeout == 0,
		"Stream.CleanupInterval": d.Stream.CleanupInterval == 0, "Stream.OpeningTimeout": d.Stream.OpeningTimeout == 0,
		"Stream.MaxOpening": d.Stream.MaxOpening == 0, "Stream.ReconnectSpread": d.Stream.ReconnectSpread == 0,
		"Stream.DrainRate": d.Stream.DrainRate == 0, "ShutdownTimeout": d.ShutdownTimeout == 0,
	} {
		if unset {
			t.Errorf("Config{}.WithDefaults() leaves %s unset", name)
		}
	}
	if d.Worker.ID != "" {
		t.Errorf("WithDefaults set Worker.ID %q: each worker of a process names itself", d.Worker.ID)
	}
}
