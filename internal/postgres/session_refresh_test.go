package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestSessionRefreshStore: a session with a refresh token is claimed for a
// refresh once its roles are older than the interval, by one caller only
// until the claim is completed or lapses; completing needs the claim's
// refresh token (a session refreshed by someone else meanwhile is left
// alone); and the database announces a session whose roles changed as a
// set, not one whose roles were only reordered or stayed the same.
func TestSessionRefreshStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewQueued(t)
	s := postgres.NewSessions(db.Pool)
	create := func(hash, refresh string, roles ...string) string {
		t.Helper()
		sid, err := s.CreateSession(ctx, []byte(hash), notify.Identity{UserID: "kim", Roles: roles}, time.Now().Add(time.Hour), refresh)
		if err != nil {
			t.Fatal(err)
		}
		return sid
	}
	refreshable := create("a", "rt-1", "ops", "dev")
	plain := create("b", "", "ops")
	other := create("c", "rt-c", "ops")
	ids := []string{refreshable, plain, other}

	if claims, err := s.ClaimRefreshes(ctx, ids, time.Hour, time.Minute, 10); err != nil || len(claims) != 0 {
		t.Fatalf("claims of sessions refreshed a moment ago: %v %v", claims, err)
	}
	if _, due, err := s.Session(ctx, []byte("a"), time.Hour); err != nil || due {
		t.Fatalf("fresh session due: %v %v", due, err)
	}
	// Their roles were read long ago.
	pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.sessions SET refreshed_at = now() - interval '2 hours'`)
	if _, due, err := s.Session(ctx, []byte("a"), time.Hour); err != nil || !due {
		t.Fatalf("old session not due: %v %v", due, err)
	}
	if _, due, err := s.Session(ctx, []byte("b"), time.Hour); err != nil || due {
		t.Fatalf("session without a refresh token due: %v %v", due, err)
	}
	if _, due, err := s.Session(ctx, []byte("a"), -1); err != nil || due {
		t.Fatalf("due with refreshing off: %v %v", due, err)
	}

	t.Run("one claim at a time", func(t *testing.T) {
		claims, err := s.ClaimRefreshes(ctx, []string{refreshable, plain}, time.Hour, time.Minute, 10)
		if err != nil || len(claims) != 1 || claims[0].SessionID != refreshable || claims[0].RefreshToken != "rt-1" ||
			!slices.Equal(claims[0].Roles, []string{"ops", "dev"}) {
			t.Fatalf("claims: %+v %v; want the refreshable session with rt-1", claims, err)
		}
		if again, err := s.ClaimRefreshes(ctx, []string{refreshable}, time.Hour, time.Minute, 10); err != nil || len(again) != 0 {
			t.Fatalf("claimed twice: %+v %v", again, err)
		}
		if _, due, _ := s.Session(ctx, []byte("a"), time.Hour); due {
			t.Fatal("a claimed session is due")
		}
		// The claim lapses (a refresh that failed for want of the issuer).
		pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.sessions SET refresh_claimed_until = now() - interval '1 second' WHERE id = $1`, refreshable)
		again, err := s.ClaimRefreshes(ctx, []string{refreshable}, time.Hour, time.Minute, 10)
		if err != nil || len(again) != 1 {
			t.Fatalf("claim after the lapse: %+v %v", again, err)
		}
		// A stale claim (its token since rotated) completes nothing.
		if err := s.RotateRefreshToken(ctx, again[0], "rt-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CompleteRefresh(ctx, claims[0], []string{"ops"}, "rt-x"); !errors.Is(err, notify.ErrNotFound) {
			t.Fatalf("stale claim completed: %v", err)
		}
	})

	t.Run("changed roles are announced, reordered ones are not", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{postgres.SessionChangedChannel}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.sessions SET refresh_claimed_until = NULL, refreshed_at = now() - interval '2 hours'`)
		claims, err := s.ClaimRefreshes(ctx, []string{refreshable}, time.Hour, time.Minute, 10)
		if err != nil || len(claims) != 1 || claims[0].RefreshToken != "rt-2" {
			t.Fatalf("claim: %+v %v", claims, err)
		}
		if changed, err := s.CompleteRefresh(ctx, claims[0], []string{"dev", "ops"}, "rt-3"); err != nil || changed {
			t.Fatalf("reordered roles: changed %v, %v", changed, err)
		}
		if _, due, _ := s.Session(ctx, []byte("a"), time.Hour); due {
			t.Fatal("a session refreshed now is due")
		}
		// Then a real change, to another session: the first announcement
		// must be that one.
		pgtest.Exec(t, ctx, db.Pool, `UPDATE notify.sessions SET refreshed_at = now() - interval '2 hours' WHERE id = $1`, other)
		claims, err = s.ClaimRefreshes(ctx, []string{other}, time.Hour, time.Minute, 10)
		if err != nil || len(claims) != 1 {
			t.Fatalf("claim: %+v %v", claims, err)
		}
		if changed, err := s.CompleteRefresh(ctx, claims[0], []string{"ops", "audit"}, "rt-c2"); err != nil || !changed {
			t.Fatalf("changed roles: changed %v, %v", changed, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := conn.WaitForNotification(wctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := postgres.SessionIDs(n.Payload); !slices.Equal(got, []string{other}) {
			t.Fatalf("announced %v, want only %s (the reordered session is not announced)", got, other)
		}
		got, err := s.Identities(ctx, ids)
		if err != nil || !slices.Equal(got[other].Roles, []string{"ops", "audit"}) || got[plain].UserID != "kim" || len(got) != 3 {
			t.Fatalf("identities: %+v %v", got, err)
		}
	})
}
