package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestNoLeakAcrossUsers: 50 users with random roles, several streams each,
// 2,000 notifications with random targets: every stream receives exactly the
// notifications meant for its user, each once, and nothing else.
func TestNoLeakAcrossUsers(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	rng := rand.New(rand.NewPCG(7, 7))
	roles := []string{"ADMIN", "SALES", "OPS", "HR", "DEV", "SUPPORT"}

	type user struct {
		id      notify.Identity
		readers []*apptest.Reader
	}
	users := make([]*user, 50)
	for i := range users {
		var rs []string
		for _, r := range roles {
			if rng.IntN(3) == 0 {
				rs = append(rs, r)
			}
		}
		u := &user{id: notify.Identity{UserID: fmt.Sprintf("user%02d", i), Roles: rs}}
		tok := env.Token(u.id.UserID, rs...)
		for range 1 + rng.IntN(3) {
			r := apptest.Open(t, srv.URL(), tok, "")
			if _, ok := r.NextOfType("connected", 10*time.Second); !ok {
				t.Fatal("stream did not connect")
			}
			u.readers = append(u.readers, r)
		}
		users[i] = u
	}

	const total = 2000
	targets := make([]notify.Target, total)
	batch := env.DB.Pool
	for i := range targets {
		var tg notify.Target
		switch rng.IntN(4) {
		case 0:
			tg.UserID = users[rng.IntN(len(users))].id.UserID
		case 1:
			tg.Roles = []string{roles[rng.IntN(len(roles))]}
		case 2:
			tg.UserID = users[rng.IntN(len(users))].id.UserID
			tg.Roles = []string{roles[rng.IntN(len(roles))], roles[rng.IntN(len(roles))]}
		case 3: // everyone
		}
		targets[i] = tg
	}
	ctx := context.Background()
	for i := 0; i < total; i += 100 {
		var msgs, userIDs []string
		var roleSets [][]string
		for j := i; j < i+100; j++ {
			msgs = append(msgs, fmt.Sprintf("m%04d", j))
			userIDs = append(userIDs, targets[j].UserID)
			rs := targets[j].Roles
			if rs == nil {
				rs = []string{}
			}
			roleSets = append(roleSets, rs)
		}
		// One row per notification; an empty role list means no role target.
		if _, err := batch.Exec(ctx, `INSERT INTO notify.notifications (message, target_user_id, target_roles)
			SELECT m, NULLIF(u, ''), NULLIF(ARRAY(SELECT jsonb_array_elements_text(r)), '{}')
			FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS x(m, u, r)`, msgs, userIDs, toJSON(roleSets)); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	for _, u := range users {
		var want []string
		for i, tg := range targets {
			if tg.Matches(u.id) {
				want = append(want, fmt.Sprintf("m%04d", i))
			}
		}
		for _, r := range u.readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := r.Notifications(len(want), 60*time.Second)
				var msgs []string
				var seqs []int64
				for _, m := range got {
					msgs = append(msgs, m.Notification().Message)
					seqs = append(seqs, apptest.SeqOf(m))
				}
				// In seq order, each once: two claims of one worker (its
				// sweep beside its loop) may publish one statement's rows
				// in either order, so the set is what must match.
				for i := 1; i < len(seqs); i++ {
					if seqs[i] <= seqs[i-1] {
						t.Errorf("%s: seq %d after %d", u.id.UserID, seqs[i], seqs[i-1])
						return
					}
				}
				msgs = slices.Sorted(slices.Values(msgs))
				if !slices.Equal(msgs, want) {
					i := 0
					for i < min(len(msgs), len(want)) && msgs[i] == want[i] {
						i++
					}
					from, to := max(0, i-2), min(i+3, len(msgs), len(want))
					t.Errorf("%s: received %d notifications, want %d; sorted, the first difference is at %d: got %v, want %v",
						u.id.UserID, len(msgs), len(want), i, msgs[from:to], want[from:to])
				}
			}()
		}
	}
	wg.Wait()
	// Nothing more arrives: a final broadcast is the next notification on every stream.
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ('final')`); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		for _, r := range u.readers {
			if m, ok := r.NextOfType("notification", 20*time.Second); !ok || m.Notification().Message != "final" {
				t.Errorf("%s: after its own notifications got %q, want the final broadcast", u.id.UserID, m.Notification().Message)
			}
		}
	}
}

func toJSON(sets [][]string) []string {
	out := make([]string, len(sets))
	for i, s := range sets {
		b := "["
		for j, r := range s {
			if j > 0 {
				b += ","
			}
			b += `"` + r + `"`
		}
		out[i] = b + "]"
	}
	return out
}
