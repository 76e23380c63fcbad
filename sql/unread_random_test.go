package sqlfiles_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// plainUnread is unread_by_user.sql's answer the slow, obvious way: every
// user's visible notifications, listed, read and shown by the server's
// rules. Its last column says whether the file's oldest may be older (a
// broadcast the user archived or snoozed above their watermark; see the
// file's header).
const plainUnread = `
WITH users AS (
    SELECT user_id FROM notify.read_cursors UNION SELECT user_id FROM notify.read_marks
    UNION SELECT user_id FROM notify.preferences UNION SELECT user_id FROM notify.inbox_states
    UNION SELECT target_user_id FROM notify.notifications WHERE target_user_id IS NOT NULL
), hidden AS (
    SELECT user_id, seq FROM notify.inbox_states WHERE archived_at IS NOT NULL OR snoozed_until > now()
), unread AS (
    SELECT users.user_id, n.created_at,
           COALESCE(n.severity <> 'critical' AND n.module = ANY (COALESCE(p.muted_modules, '{}')), false) AS muted
    FROM users
    LEFT JOIN notify.read_cursors c ON c.user_id = users.user_id
    LEFT JOIN notify.preferences p ON p.user_id = users.user_id
    JOIN notify.notifications n ON n.seq IS NOT NULL
        AND (n.target_user_id = users.user_id OR (n.target_user_id IS NULL AND n.target_roles IS NULL))
        AND notify.current(n) AND NOT notify.superseded(n)
    LEFT JOIN notify.read_marks m ON m.user_id = users.user_id AND m.seq = n.seq
    WHERE NOT COALESCE(m.is_read, n.seq <= COALESCE(c.read_up_to, 0))
      AND (users.user_id, n.seq) NOT IN (SELECT user_id, seq FROM hidden)
)
SELECT users.user_id, count(u.*) FILTER (WHERE NOT u.muted), count(u.*) FILTER (WHERE u.muted),
       min(u.created_at) FILTER (WHERE NOT u.muted), c.read_up_to,
       EXISTS (SELECT FROM hidden h JOIN notify.notifications n ON n.seq = h.seq
               WHERE h.user_id = users.user_id AND n.target_user_id IS NULL AND n.target_roles IS NULL
                 AND n.seq > COALESCE(c.read_up_to, 0) AND notify.current(n) AND NOT notify.superseded(n))
FROM users
LEFT JOIN unread u ON u.user_id = users.user_id
LEFT JOIN notify.read_cursors c ON c.user_id = users.user_id
GROUP BY users.user_id, c.read_up_to
ORDER BY 2 DESC, 1`

// testUnreadByUserRandom fills a database with random notifications (some
// expiring, some replacing others by collapse key) and inbox state, and
// checks unread_by_user.sql against plainUnread and the server's count.
func testUnreadByUserRandom(t *testing.T) {
	db := pgtest.New(t)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Now().Truncate(time.Second).Add(-time.Hour)
	const users, notifications = 40, 600
	user := func() string { return "u" + itoa(r.IntN(users)) }
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := seedRandomNotifications(ctx, tx, r, base, users, notifications); err != nil {
			return err
		}
		for range users * 3 / 4 {
			if _, err := tx.Exec(ctx, `INSERT INTO notify.read_cursors (user_id, read_up_to) VALUES ($1, $2)
				ON CONFLICT DO NOTHING`, user(), r.IntN(notifications+1)); err != nil {
				return err
			}
		}
		for range users * 10 {
			if _, err := tx.Exec(ctx, `INSERT INTO notify.read_marks (user_id, seq, is_read)
				SELECT $1, seq, $3 FROM notify.notifications WHERE seq = $2 ON CONFLICT DO NOTHING`,
				user(), 1+r.IntN(notifications), r.IntN(3) > 0); err != nil {
				return err
			}
		}
		modules := []string{"orders", "billing", "news"}
		for range users / 2 {
			mods := []string{modules[r.IntN(3)], modules[r.IntN(3)]}
			if _, err := tx.Exec(ctx, `INSERT INTO notify.preferences (user_id, muted_modules) VALUES ($1, $2)
				ON CONFLICT DO NOTHING`, user(), mods); err != nil {
				return err
			}
		}
		// Archived, snoozed (until later, or until a moment past that the
		// waker has not cleared), both, or a row left empty by unarchiving.
		for range users * 8 {
			var archived, snoozed *time.Time
			switch r.IntN(5) {
			case 0:
				archived = &base
			case 1:
				s := time.Now().Add(time.Hour)
				snoozed = &s
			case 2:
				s := base
				snoozed = &s
			case 3:
				s := time.Now().Add(time.Hour)
				archived, snoozed = &base, &s
			}
			if _, err := tx.Exec(ctx, `INSERT INTO notify.inbox_states (user_id, seq, archived_at, snoozed_until)
				SELECT $1, seq, $3, $4 FROM notify.notifications WHERE seq = $2 ON CONFLICT DO NOTHING`,
				user(), 1+r.IntN(notifications), archived, snoozed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed random inboxes: %v", err)
	}
	want, mayBeOlder := plainUnreadRows(t, db)
	if len(want) < users*9/10 {
		t.Fatalf("test bug: only %d users", len(want))
	}
	out := run(t, db.URL, "unread_by_user.sql", "limit=1000")
	older := 0
	inbox := postgres.NewInbox(db.Pool)
	for i, row := range out.rows {
		if i >= len(want) || len(row) != 6 {
			break
		}
		id := row[0]
		u, err := inbox.Unread(ctx, notify.Identity{UserID: id})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := strconv.Atoi(row[1]); err != nil || (n > postgres.UnreadCap) != u.HasMore || (!u.HasMore && n != u.Count) {
			t.Errorf("unread_by_user: %s has %s unread; the server counts %d (more: %v)", id, row[1], u.Count, u.HasMore)
		}
		// The documented exception: an archived or snoozed broadcast may
		// be reported as the oldest.
		if w := want[i]; mayBeOlder[id] && w[0] == id && row[3] != w[3] {
			got, err1 := time.Parse(psqlTime, row[3])
			plain, err2 := time.Parse(psqlTime, w[3].(string))
			if err1 == nil && err2 == nil && got.Before(plain) {
				w[3], w[4] = row[3], age{got}
				older++
			}
		}
	}
	checkRows(t, "unread_by_user on random inboxes", out, want)
	t.Logf("%d of %d users: the oldest unread is one they archived or snoozed", older, len(want))
}

// psqlTime is how psql prints a timestamptz in UTC (ts).
const psqlTime = "2006-01-02 15:04:05.999999-07"

// seedRandomNotifications inserts notifications 1 to count (a twentieth
// left unpublished) to everyone, a role, or one of users, some expiring,
// some sharing a collapse key.
func seedRandomNotifications(ctx context.Context, tx pgx.Tx, r *rand.Rand, base time.Time, users, count int) error {
	modules := []string{"", "orders", "billing", "news"}
	severities := []string{"low", "medium", "high", "critical"}
	keys := []string{"", "", "", "k1", "k2"}
	for i := 1; i <= count; i++ {
		var target *string
		var roles []string
		switch r.IntN(4) {
		case 0: // everyone
		case 1:
			roles = []string{"ADMIN"}
		case 2:
			u := "u" + itoa(r.IntN(users))
			target, roles = &u, []string{"USER"}
		default:
			u := "u" + itoa(r.IntN(users))
			target = &u
		}
		var expires *time.Time
		switch r.IntN(8) {
		case 0:
			e := base
			expires = &e
		case 1:
			e := time.Now().Add(time.Hour)
			expires = &e
		}
		// created_at mostly follows seq, not always (a retried item).
		created := base.Add(time.Duration(i-r.IntN(40)) * time.Second)
		// Inserted as a producer does, then published as the worker does.
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO notify.notifications
				(target_user_id, target_roles, module, message, severity, created_at, collapse_key, expires_at)
			VALUES ($1, $2, NULLIF($3, ''), 'm', $4, $5, NULLIF($6, ''), $7) RETURNING id`,
			target, roles, modules[r.IntN(len(modules))], severities[r.IntN(len(severities))], created,
			keys[r.IntN(len(keys))], expires).Scan(&id); err != nil {
			return err
		}
		if r.IntN(20) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE notify.notifications SET seq = $2, published_at = $3 WHERE id = $1`,
				id, i, base.Add(time.Duration(i)*time.Second)); err != nil {
				return err
			}
		}
	}
	return nil
}

// plainUnreadRows runs plainUnread: the rows unread_by_user.sql must
// print, and the users whose oldest it may report older.
func plainUnreadRows(t *testing.T, db *pgtest.DB) ([][]any, map[string]bool) {
	t.Helper()
	rows, err := db.Pool.Query(t.Context(), plainUnread)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]any
	mayBeOlder := map[string]bool{}
	for rows.Next() {
		var id string
		var unread, muted int64
		var oldest *time.Time
		var upTo *int64
		var older bool
		if err := rows.Scan(&id, &unread, &muted, &oldest, &upTo, &older); err != nil {
			t.Fatal(err)
		}
		row := []any{id, itoa(unread), itoa(muted), "", "", ""}
		if oldest != nil {
			row[3], row[4] = ts(*oldest), age{*oldest}
		}
		if upTo != nil {
			row[5] = itoa(*upTo)
		}
		want = append(want, row)
		mayBeOlder[id] = older
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return want, mayBeOlder
}
