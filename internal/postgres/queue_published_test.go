package postgres_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestClaimAndPublishAnswersWhatTheFeedReads: a batch answers the
// notifications it published exactly as the feed's read of the same seqs
// returns them (every column, the odd shapes included), so a worker can
// hand them to its feed instead of the feed reading them back; a row set
// aside in the batch is not among them, and a batch that publishes nothing
// answers none.
func TestClaimAndPublishAnswersWhatTheFeedReads(t *testing.T) {
	t.Parallel()
	db, queue := pgtest.NewQueue(t)
	ctx := t.Context()
	notes := postgres.NewNotifications(db.Pool)

	// Constraints dropped, as an admin might: one row of the batch cannot
	// be delivered and is set aside by the claim itself.
	pgtest.Exec(t, ctx, db.Pool, `ALTER TABLE notify.notifications DROP CONSTRAINT notifications_data_check`)
	pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications
		(message, target_user_id, target_roles, module, action_type, details, severity, data, idempotency_key, collapse_key, expires_at, actions) VALUES
		('to alice', 'alice', NULL, NULL, NULL, NULL, 'low', '{}', NULL, NULL, NULL, NULL),
		('to roles', NULL, '{FINANCE,OPS,rôle a}', 'billing', 'invoice.paid', 'details
on two lines', 'critical', '{"n": 1.50, "s": "é\"\\", "nested": {"a": [1, null]}}', 'key-1', 'invoice-7', now() + interval '1 day',
		 '[{"id": "open", "label": "Open", "url": "https://example.com/x?a=1&b=2"}, {"id": "ack", "label": "Got it"}]'),
		('undeliverable', NULL, NULL, NULL, NULL, NULL, 'medium', '[1]', NULL, NULL, NULL, NULL),
		('to everyone', NULL, NULL, NULL, NULL, '', 'high', '{"big": "`+fmt.Sprintf("%0900d", 7)+`"}', NULL, NULL, NULL, NULL)`)

	b, err := queue.ClaimAndPublish(ctx, 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if b.Items != 4 || len(b.SetAside) != 1 || b.LastSeq != 3 {
		t.Fatalf("batch: %d items, set aside %q, last seq %d; want 4 items, 1 set aside, last seq 3", b.Items, b.SetAside, b.LastSeq)
	}
	read, bad, last, err := notes.Published(ctx, 0, 100)
	if err != nil || len(bad) != 0 || last != 3 {
		t.Fatalf("feed read: %d rows, %d bad, last %d, %v; want 3 rows ending at seq 3", len(read), len(bad), last, err)
	}
	if len(b.Published) != 3 {
		t.Fatalf("the batch answered %d notifications, want the 3 it published", len(b.Published))
	}
	for i := range read {
		if !reflect.DeepEqual(b.Published[i], read[i]) {
			t.Errorf("seq %d as the batch answered it:\n%+v\nas the feed reads it:\n%+v", read[i].Seq, b.Published[i], read[i])
		}
	}

	// Nothing due: an empty batch, no notifications.
	if b, err := queue.ClaimAndPublish(ctx, 100, time.Minute); err != nil || b.Items != 0 || b.Published != nil || b.LastSeq != 0 {
		t.Fatalf("empty batch: %+v, %v", b, err)
	}
	// Only a row that is set aside: counted, nothing published.
	pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message, data) VALUES ('undeliverable alone', '"x"')`)
	if b, err := queue.ClaimAndPublish(ctx, 100, time.Minute); err != nil || b.Items != 1 || len(b.SetAside) != 1 || b.Published != nil {
		t.Fatalf("batch of one undeliverable row: %+v, %v", b, err)
	}
}
