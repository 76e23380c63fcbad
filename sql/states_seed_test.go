package sqlfiles_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// statesWorld is the inbox world (seq 1 to 13) plus notifications that use
// the inbox columns of issue 17 (migration 00004), and inbox states written
// through the server's own store, as the API writes them:
//
//	seq key          target      module   collapse key  expires    actions
//	14  orders-3     user alice  orders   orders        -          open
//	15  orders-4     user alice  orders   orders        -          open      (supersedes 14)
//	16  bc-expired   everyone    orders   -             the seed   -
//	17  bc-pay       everyone    billing  -             now+1h     pay, later
//	18  bc-digest-1  everyone    orders   digest        -          -
//	19  bc-digest-2  everyone    orders   digest        -          -         (supersedes 18)
//
//	user   seen  state changes, in this order
//	alice  9     archive 10; snooze 12 for an hour; snooze 13 until a minute
//	             ago (over, not woken); click open on 15; click pay on 17,
//	             archive 17
//	bob    -     archive 3 (his oldest unread broadcast); snooze 17 for an
//	             hour
//	frank  -     click pay on 17 (moved 8 days back); archive 5, unarchive 5
//	gina   -     click later on 17
type statesWorld struct {
	*inboxWorld
	inbox *postgres.Inbox
	// snoozedUntil holds the snoozes: "user seq".
	snoozedUntil map[string]time.Time
}

func seedStates(t *testing.T) *statesWorld {
	t.Helper()
	w := &statesWorld{inboxWorld: seedInbox(t), snoozedUntil: map[string]time.Time{}}
	w.inbox = postgres.NewInbox(w.db.Pool)
	b, m := w.base, time.Minute
	open := `[{"id": "open", "label": "Open orders", "url": "/orders"}]`
	more := []struct {
		key, user, module, collapse, actions string
		expires                              time.Time
	}{
		{key: "orders-3", user: "alice", module: "orders", collapse: "orders", actions: open},
		{key: "orders-4", user: "alice", module: "orders", collapse: "orders", actions: open},
		{key: "bc-expired", module: "orders", expires: w.now},
		{key: "bc-pay", module: "billing", expires: w.now.Add(time.Hour),
			actions: `[{"id": "pay", "label": "Pay now"}, {"id": "later", "label": "Later"}]`},
		{key: "bc-digest-1", module: "orders", collapse: "digest"},
		{key: "bc-digest-2", module: "orders", collapse: "digest"},
	}
	ctx := t.Context()
	err := pgx.BeginFunc(ctx, w.db.Pool, func(tx pgx.Tx) error {
		for i, n := range more {
			seq := int64(14 + i)
			// Created after bc-news (base-30s), in seq order.
			it := &item{user: n.user, module: n.module, created: b.Add(-time.Duration(6-i) * 4 * time.Second), seq: seq,
				status: "sent", attempts: 1}
			it.published = it.created.Add(time.Second)
			if err := insertItem(ctx, tx, n.key, it); err != nil {
				return err
			}
			w.items[n.key] = it
			if _, err := tx.Exec(ctx, `UPDATE notify.notifications
				SET collapse_key = NULLIF($2, ''), expires_at = $3, actions = NULLIF($4, '')::jsonb WHERE id = $1`,
				it.nid, n.collapse, nullTime(n.expires), n.actions); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE notify.stream_head SET last_seq = 19`)
		return err
	})
	if err != nil {
		t.Fatalf("seed the inbox columns: %v", err)
	}

	hour := w.now.Add(time.Hour)
	w.do(t, "alice", func(ctx context.Context, in *postgres.Inbox, id notify.Identity) error {
		if _, err := in.Seen(ctx, id, 9); err != nil {
			return err
		}
		if _, err := in.SetArchived(ctx, id, w.items["to-alice-long"].nid, true); err != nil {
			return err
		}
		if err := w.snooze(ctx, id, "bc-orders", hour); err != nil {
			return err
		}
		if err := w.snooze(ctx, id, "bc-news", w.now.Add(-m)); err != nil {
			return err
		}
		if _, err := in.Interact(ctx, id, w.items["orders-4"].nid, "open"); err != nil {
			return err
		}
		if _, err := in.Interact(ctx, id, w.items["bc-pay"].nid, "pay"); err != nil {
			return err
		}
		_, err := in.SetArchived(ctx, id, w.items["bc-pay"].nid, true)
		return err
	})
	w.do(t, "bob", func(ctx context.Context, in *postgres.Inbox, id notify.Identity) error {
		if _, err := in.SetArchived(ctx, id, w.items["sent-2"].nid, true); err != nil {
			return err
		}
		return w.snooze(ctx, id, "bc-pay", hour)
	})
	w.do(t, "frank", func(ctx context.Context, in *postgres.Inbox, id notify.Identity) error {
		if _, err := in.Interact(ctx, id, w.items["bc-pay"].nid, "pay"); err != nil {
			return err
		}
		if _, err := w.db.Pool.Exec(ctx, `UPDATE notify.inbox_states SET interacted_at = interacted_at - interval '8 days'
			WHERE user_id = 'frank'`); err != nil {
			return err
		}
		if _, err := in.SetArchived(ctx, id, w.items["bc-critical"].nid, true); err != nil {
			return err
		}
		_, err := in.SetArchived(ctx, id, w.items["bc-critical"].nid, false)
		return err
	})
	w.do(t, "gina", func(ctx context.Context, in *postgres.Inbox, id notify.Identity) error {
		_, err := in.Interact(ctx, id, w.items["bc-pay"].nid, "later")
		return err
	})
	return w
}

// do runs change with the store, as user (no roles), failing t on error.
func (w *statesWorld) do(t *testing.T, user string, change func(context.Context, *postgres.Inbox, notify.Identity) error) {
	t.Helper()
	if err := change(t.Context(), w.inbox, notify.Identity{UserID: user}); err != nil {
		t.Fatalf("inbox states of %s: %v", user, err)
	}
}

// snooze snoozes item key for id's user until until, through the store.
func (w *statesWorld) snooze(ctx context.Context, id notify.Identity, key string, until time.Time) error {
	until = until.Truncate(time.Microsecond)
	w.snoozedUntil[id.UserID+" "+itoa(w.items[key].seq)] = until
	_, err := w.inbox.Snooze(ctx, id, w.items[key].nid, until)
	return err
}

// state reads user's notify.inbox_states row for item key.
func (w *statesWorld) state(t *testing.T, user, key string) (archivedAt, snoozedUntil, interactedAt, updatedAt *time.Time) {
	t.Helper()
	if err := w.db.Pool.QueryRow(t.Context(), `SELECT archived_at, snoozed_until, interacted_at, updated_at
		FROM notify.inbox_states WHERE user_id = $1 AND seq = $2`, user, w.items[key].seq,
	).Scan(&archivedAt, &snoozedUntil, &interactedAt, &updatedAt); err != nil {
		t.Fatalf("read the inbox state of %s on %s: %v", user, key, err)
	}
	return archivedAt, snoozedUntil, interactedAt, updatedAt
}
