package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// BenchmarkInbox measures the two inbox reads a badge and a first screen
// make, for a user whose inbox holds 100,000 notifications (direct, by
// role and broadcast) among 200,000 in the table, half of them read by the
// watermark and a few hundred marked individually. `make bench` runs it;
// targets on this machine: unread count p99 <= 5 ms, first page p99 <= 20 ms.
func BenchmarkInbox(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	seed := []string{
		// 100,000 for alice: 50k direct, 25k to her role, 25k broadcast; 100,000 for others.
		`INSERT INTO notify.notifications (message, target_user_id, target_roles, module, created_at)
		 SELECT 'n' || g,
		        CASE WHEN g % 4 IN (0, 1) THEN 'alice' WHEN g % 8 = 2 THEN 'bob' END,
		        CASE WHEN g % 8 = 3 THEN '{SALES}'::text[] WHEN g % 8 = 6 THEN '{OPS}'::text[] END,
		        (ARRAY['orders','billing','hr'])[1 + g % 3], now() - (200000 - g) * interval '1 second'
		 FROM generate_series(1, 200000) g`,
		`UPDATE notify.notifications n SET seq = x.rn, published_at = n.created_at
		 FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn FROM notify.notifications) x WHERE n.id = x.id`,
		`UPDATE notify.queue_items SET status = 'sent', attempts = 1, sent_at = now()`,
		`UPDATE notify.stream_head SET last_seq = 200000`,
		`INSERT INTO notify.read_cursors (user_id, read_up_to) VALUES ('alice', 100000)`,
		`INSERT INTO notify.read_marks (user_id, seq, is_read)
		 SELECT 'alice', s, s <= 100000 FROM generate_series(99700, 100300) s`,
		`INSERT INTO notify.preferences (user_id, muted_modules) VALUES ('alice', '{hr}')`,
		`VACUUM ANALYZE notify.notifications`, `ANALYZE notify.read_marks`,
	}
	for _, q := range seed {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	inbox := postgres.NewInbox(db.Pool)
	alice := notify.Identity{UserID: "alice", Roles: []string{"SALES"}}

	measure := func(b *testing.B, fn func() error) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if err := fn(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.Run("unread-count", func(b *testing.B) {
		measure(b, func() error {
			u, err := inbox.Unread(ctx, alice)
			n, more := u.Count, u.HasMore
			if err == nil && (n != postgres.UnreadCap || !more) {
				b.Fatalf("unread %d %v", n, more)
			}
			return err
		})
	})
	b.Run("first-page", func(b *testing.B) {
		measure(b, func() error {
			items, more, err := inbox.History(ctx, alice, postgres.HistoryQuery{Limit: 20})
			if err == nil && (len(items) != 20 || !more) {
				b.Fatalf("page of %d", len(items))
			}
			return err
		})
	})
	b.Run("first-unread-page", func(b *testing.B) {
		measure(b, func() error {
			_, _, err := inbox.History(ctx, alice, postgres.HistoryQuery{Limit: 20, UnreadOnly: true})
			return err
		})
	})
}
