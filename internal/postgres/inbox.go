package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
)

// Inbox is the store of what a user sees of the published stream: history
// pages, unread counts (exact up to UnreadCap), a stream's opening state,
// read state (marks and a watermark) and mutes, every read through the
// user's audience (audience.go). Announce carries a change to other nodes
// for package inboxsync.
type Inbox struct {
	pool    *pgxpool.Pool
	replica *Replica // nil: every read on pool
}

// NewInbox returns the inbox store over pool.
func NewInbox(pool *pgxpool.Pool) *Inbox { return &Inbox{pool: pool} }

// WithReplica returns a copy of the store that reads history pages from r
// when r can answer them as the primary would have when they were asked
// for. Unread counts, stream openings and every write stay on the primary.
func (s *Inbox) WithReplica(r *Replica) *Inbox {
	c := *s
	c.replica = r
	return &c
}

// In every inbox statement $1 is the user id and $2 the user's roles;
// notify.visible_to is the one rule replay, history and counts share (and
// notify.Target.Matches in Go, for the live fan-out).
const visible = `notify.visible_to(n, $1, $2::text[])`

// readExpr says whether n is read, given the user's cursor c and mark m.
const readExpr = `COALESCE(m.is_read, n.seq <= c.read_up_to)`

// cursorJoin brings the user's watermark (0 when none) as c.
const cursorJoin = `CROSS JOIN (SELECT COALESCE(max(read_up_to), 0) AS read_up_to, max(updated_at) AS updated_at
	FROM notify.read_cursors WHERE user_id = $1) c
	LEFT JOIN notify.read_marks m ON m.user_id = $1 AND m.seq = n.seq`

// notMuted keeps critical notifications and those of modules the user has not muted.
const notMuted = `(n.severity = 'critical' OR n.module IS NULL OR NOT n.module = ANY(COALESCE(
	(SELECT muted_modules FROM notify.preferences WHERE user_id = $1), '{}')))`

// InboxItem is a notification with the user's read state.
type InboxItem struct {
	notify.Notification
	Read   bool
	ReadAt time.Time
}

// HistoryQuery selects a page of a user's history.
type HistoryQuery struct {
	Before     int64 // only seq < Before; 0: from the newest
	Limit      int
	UnreadOnly bool
	Module     string
	Severity   notify.Severity
}

func rolesArg(id notify.Identity) []string {
	if id.Roles == nil {
		return []string{}
	}
	return id.Roles
}

// unreadNow says whether n is unread for user $1: its mark if it has one,
// else above the watermark. Inside the audience's range reads, per row.
const unreadNow = `NOT COALESCE((SELECT m.is_read FROM notify.read_marks m WHERE m.user_id = $1 AND m.seq = n.seq),
	n.seq <= (SELECT COALESCE(max(read_up_to), 0) FROM notify.read_cursors WHERE user_id = $1))`

// historyAudience selects the seqs of a history page, newest first, from
// the user's audience ($3: before, $5: limit, $6 module, $7 severity, $8
// unread only).
var historyAudience = audienceQuery("@seq < $3 AND @seq > $4",
	`($6 = '' OR n.module = $6) AND ($7 = '' OR n.severity = $7) AND (NOT $8 OR `+unreadNow+`)`, "DESC")

// History returns the user's published notifications, newest first, and
// whether older ones remain.
func (s *Inbox) History(ctx context.Context, id notify.Identity, q HistoryQuery) ([]InboxItem, bool, error) {
	if s.replica == nil {
		return s.historyOn(ctx, s.pool, id, q)
	}
	// A fence read after the request began: the page shows every
	// notification and read mark committed before it (the user's own
	// "mark read" a moment ago included), wherever it is read.
	fence, err := s.replica.Fence(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, err
		}
		fence = Fence{} // read on the primary, which it is likely to fail too
	}
	var items []InboxItem
	var more bool
	err = s.replica.route(ctx, ReadHistory, fence, s.pool, func(ctx context.Context, qr querier) error {
		var err error
		items, more, err = s.historyOn(ctx, qr, id, q)
		return err
	})
	return items, more, err
}

func (s *Inbox) historyOn(ctx context.Context, qr querier, id notify.Identity, q HistoryQuery) ([]InboxItem, bool, error) {
	before := q.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := qr.Query(ctx, `SELECT `+columnsOf("n.")+`, `+readExpr+`,
			CASE WHEN m.is_read THEN m.marked_at WHEN m.is_read IS NULL AND n.seq <= c.read_up_to THEN c.updated_at END
		FROM (`+historyAudience+`) a JOIN notify.notifications n ON n.seq = a.seq `+cursorJoin+`
		ORDER BY n.seq DESC`,
		id.UserID, rolesArg(id), before, 0, q.Limit+1, q.Module, string(q.Severity), q.UnreadOnly)
	if err != nil {
		return nil, false, fmt.Errorf("read history: %w", interpretError(err))
	}
	defer rows.Close()
	var items []InboxItem
	for rows.Next() {
		var it InboxItem
		var readAt *time.Time
		var published time.Time
		n := &it.Notification
		if err := rows.Scan(&n.ID, &n.Seq, &n.Target.UserID, &n.Target.Roles, &n.Module, &n.ActionType, &n.Details,
			&n.Message, &n.Severity, &n.Data, &n.IdempotencyKey, &n.CreatedAt, &published, &it.Read, &readAt); err != nil {
			return nil, false, fmt.Errorf("read history: %w", err)
		}
		n.PublishedAt = published
		if len(n.Target.Roles) == 0 {
			n.Target.Roles = nil
		}
		if readAt != nil && it.Read {
			it.ReadAt = *readAt
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read history: %w", interpretError(err))
	}
	more := len(items) > q.Limit
	if more {
		items = items[:q.Limit]
	}
	return items, more, nil
}

// UnreadCap is where unread counting stops: counts are exact up to it, then
// "at least UnreadCap" (hasMore), so the answer stays fast at any inbox size.
const UnreadCap = 99

// Unread is a user's unread count as of one snapshot.
type Unread struct {
	// Count is exact up to UnreadCap.
	Count int
	// HasMore: there are more than UnreadCap.
	HasMore bool
	// Through is the last published seq the count covers: a client adds one
	// for each later notification it receives, and none for earlier ones.
	Through int64
}

// unreadQuery counts, from one snapshot with the stream head, the user's
// unread unmuted notifications up to $5: above the watermark, the audience's
// ranges (audience.go) skipping what was read one by one; at or below it,
// only the few marked unread. The read mark is looked up per row by its
// primary key (a scalar subquery, which the planner cannot turn into a scan
// of all the user's marks).
var unreadQuery = `SELECT (SELECT last_seq FROM notify.stream_head), (SELECT count(*) FROM (
		(` + audienceQuery(`@seq > $3 AND @seq <= $4
			AND @seq > (SELECT COALESCE(max(read_up_to), 0) FROM notify.read_cursors WHERE user_id = $1)`,
	notMuted+` AND NOT COALESCE((SELECT m.is_read FROM notify.read_marks m WHERE m.user_id = $1 AND m.seq = n.seq), false)`, "ASC") + `)
		UNION
		(SELECT n.seq FROM notify.read_marks m JOIN notify.notifications n ON n.seq = m.seq
		 WHERE m.user_id = $1 AND NOT m.is_read AND ` + visible + ` AND ` + notMuted + `
		 LIMIT $5)
		LIMIT $5) x)`

// Unread counts the user's unread, unmuted notifications (exactly up to
// UnreadCap) and says which seq the count runs through, from one snapshot.
func (s *Inbox) Unread(ctx context.Context, id notify.Identity) (Unread, error) {
	var u Unread
	err := s.pool.QueryRow(ctx, unreadQuery, id.UserID, rolesArg(id), 0, int64(1<<63-1), UnreadCap+1).Scan(&u.Through, &u.Count)
	if err != nil {
		return Unread{}, fmt.Errorf("count unread: %w", interpretError(err))
	}
	if u.Count > UnreadCap {
		u.Count, u.HasMore = UnreadCap, true
	}
	return u, nil
}

// Opening is what a stream reads about its user when it opens.
type Opening struct {
	Muted  []string
	Unread Unread
	// Head is the stream's position in the same snapshot (Head.LastSeq is
	// Unread.Through).
	Head Head
}

// openingQuery reads a stream's opening state in one statement: one round
// trip and one snapshot for the mutes, the unread count and the head.
var openingQuery = `SELECT COALESCE((SELECT muted_modules FROM notify.preferences WHERE user_id = $1), '{}'::text[]),
	h.truncated_before, u.through, u.count, ` + holesColumn + `
	FROM notify.stream_head h, (` + unreadQuery + `) u(through, count)`

// Opening reads the user's mutes, unread count and the stream head at once.
func (s *Inbox) Opening(ctx context.Context, id notify.Identity) (Opening, error) {
	var o Opening
	var holes []int64
	err := s.pool.QueryRow(ctx, openingQuery, id.UserID, rolesArg(id), 0, int64(1<<63-1), UnreadCap+1).
		Scan(&o.Muted, &o.Head.TruncatedBefore, &o.Unread.Through, &o.Unread.Count, &holes)
	if err != nil {
		return Opening{}, fmt.Errorf("read the stream's opening state: %w", interpretError(err))
	}
	o.Head.Holes = holesOf(holes)
	o.Head.LastSeq = o.Unread.Through
	if o.Unread.Count > UnreadCap {
		o.Unread.Count, o.Unread.HasMore = UnreadCap, true
	}
	return o, nil
}

// seqOf finds the seq of a published notification the user may see;
// notify.ErrNotFound otherwise (unknown, unpublished, or someone else's).
func (s *Inbox) seqOf(ctx context.Context, tx pgx.Tx, id notify.Identity, notificationID string) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `SELECT n.seq FROM notify.notifications n
		WHERE n.id = $3 AND n.seq IS NOT NULL AND `+visible, id.UserID, rolesArg(id), notificationID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notify.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("find notification: %w", interpretError(err))
	}
	return seq, nil
}

// SetRead marks one notification read or unread for the user and returns
// its seq. Idempotent.
func (s *Inbox) SetRead(ctx context.Context, id notify.Identity, notificationID string, read bool) (int64, error) {
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if seq, err = s.seqOf(ctx, tx, id, notificationID); err != nil {
			return err
		}
		// Serialize with read-all for this user: lock (or create) the cursor row.
		var upTo int64
		if err := tx.QueryRow(ctx, `INSERT INTO notify.read_cursors (user_id) VALUES ($1)
			ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id RETURNING read_up_to`, id.UserID).Scan(&upTo); err != nil {
			return fmt.Errorf("lock read cursor: %w", interpretError(err))
		}
		// The watermark already says what this mark would say: no exception needed.
		if (seq <= upTo) == read {
			_, err = tx.Exec(ctx, `DELETE FROM notify.read_marks WHERE user_id = $1 AND seq = $2`, id.UserID, seq)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO notify.read_marks (user_id, seq, is_read) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, seq) DO UPDATE SET is_read = EXCLUDED.is_read, marked_at = now()
				WHERE read_marks.is_read <> EXCLUDED.is_read`, id.UserID, seq, read)
		}
		if err != nil {
			return fmt.Errorf("mark read: %w", interpretError(err))
		}
		return nil
	})
	return seq, err
}

// ReadAll marks everything up to upTo read for the user. upTo is capped at
// the last published seq, so a notification published after the caller's
// view stays unread. It returns the watermark now in force.
func (s *Inbox) ReadAll(ctx context.Context, id notify.Identity, upTo int64) (int64, error) {
	var mark int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO notify.read_cursors AS c (user_id, read_up_to)
			VALUES ($1, LEAST($2, (SELECT last_seq FROM notify.stream_head)))
			ON CONFLICT (user_id) DO UPDATE SET read_up_to = GREATEST(c.read_up_to, EXCLUDED.read_up_to),
				updated_at = CASE WHEN EXCLUDED.read_up_to > c.read_up_to THEN now() ELSE c.updated_at END
			RETURNING read_up_to`, id.UserID, upTo).Scan(&mark)
		if err != nil {
			return fmt.Errorf("move read cursor: %w", interpretError(err))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM notify.read_marks WHERE user_id = $1 AND seq <= $2`, id.UserID, mark); err != nil {
			return fmt.Errorf("drop read marks below the cursor: %w", interpretError(err))
		}
		return nil
	})
	return mark, err
}

// MutedModules returns the modules the user muted.
func (s *Inbox) MutedModules(ctx context.Context, userID string) ([]string, error) {
	var mods []string
	err := s.pool.QueryRow(ctx, `SELECT muted_modules FROM notify.preferences WHERE user_id = $1`, userID).Scan(&mods)
	if errors.Is(err, pgx.ErrNoRows) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read preferences: %w", interpretError(err))
	}
	return mods, nil
}

// SetMutedModules stores the user's muted modules.
func (s *Inbox) SetMutedModules(ctx context.Context, userID string, modules []string) error {
	if modules == nil {
		modules = []string{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO notify.preferences (user_id, muted_modules) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET muted_modules = EXCLUDED.muted_modules, updated_at = now()`, userID, modules)
	if err != nil {
		return fmt.Errorf("store preferences: %w", interpretError(err))
	}
	return nil
}

// Announce sends payload on the NOTIFY channel to every node listening
// there, in a statement of its own: call it once the change it announces
// has committed. The payload must fit NOTIFY's 8,000 bytes. inboxsync owns
// the channel and what its payloads mean.
func (s *Inbox) Announce(ctx context.Context, channel string, payload []byte) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, string(payload)); err != nil {
		return fmt.Errorf("announce inbox change: %w", interpretError(err))
	}
	return nil
}
