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
const cursorJoin = `CROSS JOIN (SELECT COALESCE(max(read_up_to), 0) AS read_up_to, max(updated_at) AS updated_at,
		COALESCE(max(seen_up_to), 0) AS seen_up_to
	FROM notify.read_cursors WHERE user_id = $1) c
	LEFT JOIN notify.read_marks m ON m.user_id = $1 AND m.seq = n.seq`

// notMuted keeps critical notifications and those of modules the user has not muted.
const notMuted = `(n.severity = 'critical' OR n.module IS NULL OR NOT n.module = ANY(COALESCE(
	(SELECT muted_modules FROM notify.preferences WHERE user_id = $1), '{}')))`

// stateOf is what the user's notify.inbox_states row says of n (cond over
// s), false without a row: a scalar subquery, so each row the audience
// reads costs one primary-key probe, as the read marks do, rather than the
// planner hashing all of the user's states.
func stateOf(cond string) string {
	return `COALESCE(` + amongUserRows("inbox_states", `(SELECT `+cond+` FROM notify.inbox_states s WHERE s.user_id = $1 AND s.seq = n.seq)`) + `, false)`
}

// amongUserRows runs probe, a per-row primary-key probe of user $1's rows
// of table (read_marks, inbox_states) for n.seq, only when n.seq lies
// between the user's first and last row there, and is NULL otherwise. The
// bounds are two index probes per statement (uncorrelated, so InitPlans).
// A user's marks and states sit where they have been reading and acting,
// while the reads that probe per row (counts, unread pages) walk the newest
// notifications first: for a user with 150 marks a count's 300 rows cost
// 300 probes fewer, and for one with none, no probe at all.
func amongUserRows(table, probe string) string {
	bound := func(agg string) string {
		return `(SELECT ` + agg + `(seq) FROM notify.` + table + ` WHERE user_id = $1)`
	}
	return `CASE WHEN n.seq BETWEEN ` + bound("min") + ` AND ` + bound("max") + ` THEN ` + probe + ` END`
}

// readMark is n's read mark for user $1 (is_read), NULL without one.
var readMark = amongUserRows("read_marks", `(SELECT m.is_read FROM notify.read_marks m WHERE m.user_id = $1 AND m.seq = n.seq)`)

// snoozedNow is the state condition of a notification the user snoozed.
const snoozedNow = `COALESCE(s.snoozed_until > now(), false)`

// notSuperseded is "NOT notify.superseded(n)" with the function's body
// written out: PostgreSQL does not inline a function holding a subquery,
// and calling it costs tens of microseconds a row where the written-out
// EXISTS is one index probe (notifications_collapse_idx), and none for the
// many rows without a key. TestNotSupersededIsTheFunction holds the two
// together.
const notSuperseded = `(n.collapse_key IS NULL OR NOT EXISTS (
	SELECT 1 FROM notify.notifications sup
	WHERE sup.collapse_key = n.collapse_key
	  AND COALESCE(sup.target_user_id, '') = COALESCE(n.target_user_id, '')
	  AND sup.seq > n.seq
	  AND sup.target_roles IS NOT DISTINCT FROM n.target_roles
	  AND notify.undeliverable_reason(sup) IS NULL))`

// shown keeps what the inbox lists and counts for user $1 (migration
// 00004): current (not expired), not superseded by a newer notification
// with its collapse key, and not snoozed by the user; archived decides
// about the user's archived ones ("exclude", "include" or "only").
// Written as a CASE for the planner's estimate, as in audience.go.
func shown(archived string) string {
	cond := `notify.current(n) AND ` + notSuperseded + ` AND `
	switch archived {
	case ArchivedInclude:
		cond += `NOT ` + stateOf(snoozedNow)
	case ArchivedOnly:
		cond += stateOf(`s.archived_at IS NOT NULL AND NOT ` + snoozedNow)
	default:
		cond += `NOT ` + stateOf(`s.archived_at IS NOT NULL OR `+snoozedNow)
	}
	return `(CASE WHEN ` + cond + ` THEN 1 END) IS NOT NULL`
}

// The values of HistoryQuery.Archived.
const (
	ArchivedExclude = ""        // history leaves archived ones out
	ArchivedInclude = "include" // ?archived=true: archived ones too
	ArchivedOnly    = "only"    // ?archived=only: the archive
)

// InboxItem is a notification with the user's state of it.
type InboxItem struct {
	notify.Notification
	Read   bool
	ReadAt time.Time
	// Seen: at or below the user's seen mark, or read.
	Seen bool
	// ArchivedAt is when the user archived it (zero: not archived).
	ArchivedAt time.Time
	// Interaction is the id of the action the user clicked last, at
	// InteractedAt ("" and zero: none).
	Interaction  string
	InteractedAt time.Time
}

// HistoryQuery selects a page of a user's history.
type HistoryQuery struct {
	Before     int64 // only seq < Before; 0: from the newest
	Limit      int
	UnreadOnly bool
	Module     string
	Severity   notify.Severity
	// Archived is ArchivedExclude (the default), ArchivedInclude or ArchivedOnly.
	Archived string
}

func rolesArg(id notify.Identity) []string {
	if id.Roles == nil {
		return []string{}
	}
	return id.Roles
}

// unreadNow says whether n is unread for user $1: its mark if it has one,
// else above the watermark. Inside the audience's range reads, per row.
var unreadNow = `NOT COALESCE(` + readMark + `,
	n.seq <= (SELECT COALESCE(max(read_up_to), 0) FROM notify.read_cursors WHERE user_id = $1))`

// historyAudience selects the seqs of a history page, newest first, from
// the user's audience ($3: before, $5: limit, $6 module, $7 severity, $8
// unread only), with archived as in shown.
func historyAudience(archived string) string {
	return audienceQuery("@seq < $3 AND @seq > $4",
		`($6 = '' OR n.module = $6) AND ($7 = '' OR n.severity = $7) AND (NOT $8 OR `+unreadNow+`) AND `+shown(archived), "DESC")
}

// archiveAudience selects the seqs of a page of the archive, newest first,
// with the parameters of historyAudience: from the user's own archived
// rows (the primary key of notify.inbox_states, read backward), so the page
// costs what the archive holds, not what the audience does.
var archiveAudience = `SELECT n.seq FROM notify.inbox_states st JOIN notify.notifications n ON n.seq = st.seq
	WHERE st.user_id = $1 AND st.seq < $3 AND st.seq > $4 AND st.archived_at IS NOT NULL AND ` + visible + `
	  AND ($6 = '' OR n.module = $6) AND ($7 = '' OR n.severity = $7) AND (NOT $8 OR ` + unreadNow + `)
	  AND ` + shown(ArchivedOnly) + `
	ORDER BY st.seq DESC LIMIT $5`

// historyQueries holds the history statement for each HistoryQuery.Archived.
var historyQueries = map[string]*audienceStatement{}

func init() {
	for _, a := range []string{ArchivedExclude, ArchivedInclude, ArchivedOnly} {
		audience := historyAudience(a)
		if a == ArchivedOnly {
			audience = archiveAudience
		}
		historyQueries[a] = newAudienceStatement(`SELECT ` + columnsOf("n.") + `, ` + readExpr + `,
			CASE WHEN m.is_read THEN m.marked_at WHEN m.is_read IS NULL AND n.seq <= c.read_up_to THEN c.updated_at END,
			n.seq <= c.seen_up_to, st.archived_at, st.interaction, st.interacted_at
		FROM (` + audience + `) a JOIN notify.notifications n ON n.seq = a.seq ` + cursorJoin + `
		LEFT JOIN notify.inbox_states st ON st.user_id = $1 AND st.seq = n.seq
		ORDER BY n.seq DESC`)
	}
}

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
	query, ok := historyQueries[q.Archived]
	if !ok {
		return nil, false, fmt.Errorf("%w: archived must be %q, %q or %q", notify.ErrInvalid, ArchivedExclude, ArchivedInclude, ArchivedOnly)
	}
	roles := rolesArg(id)
	rows, err := qr.Query(ctx, query.For(roles),
		id.UserID, roles, before, 0, q.Limit+1, q.Module, string(q.Severity), q.UnreadOnly)
	if err != nil {
		return nil, false, fmt.Errorf("read history: %w", interpretError(err))
	}
	defer rows.Close()
	var items []InboxItem
	for rows.Next() {
		var it InboxItem
		var readAt, archivedAt, interactedAt *time.Time
		var interaction *string
		n, err := scanNotification(rows, &it.Read, &readAt, &it.Seen, &archivedAt, &interaction, &interactedAt)
		if err != nil {
			return nil, false, fmt.Errorf("read history: %w", err)
		}
		it.Notification = n
		if readAt != nil && it.Read {
			it.ReadAt = *readAt
		}
		it.Seen = it.Seen || it.Read
		if archivedAt != nil {
			it.ArchivedAt = *archivedAt
		}
		if interaction != nil && interactedAt != nil {
			it.Interaction, it.InteractedAt = *interaction, *interactedAt
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
	// Unseen counts the unread ones above the user's seen mark, exact up to
	// UnreadCap (UnseenHasMore beyond). Opening leaves it out.
	Unseen        int
	UnseenHasMore bool
}

// countsQuery reads, from one snapshot, the stream head and the user's
// unread, unmuted notifications the inbox shows: the newest $5 of them
// (the audience's ranges above the watermark, audience.go, skipping what
// was read one by one; then, at or below the watermark, the few marked
// unread), counted, and counted again above the seen mark. Unseen ones are
// the newest of the unread, so counting them among the newest $5 is exact
// up to $5: one pass gives both counts. The read mark is looked up per row
// by its primary key (a scalar subquery, which the planner cannot turn
// into a scan of all the user's marks).
var countsQuery = `SELECT (SELECT last_seq FROM notify.stream_head), count(*), count(*) FILTER (WHERE x.seq > ` + seenMark + `)
	FROM (SELECT seq FROM (
		(` + audienceQuery(`@seq > $3 AND @seq <= $4
			AND @seq > (SELECT COALESCE(max(read_up_to), 0) FROM notify.read_cursors WHERE user_id = $1)`,
	notMuted+` AND NOT COALESCE(`+readMark+`, false)
			AND `+shown(ArchivedExclude), "DESC") + `)
		UNION
		(SELECT n.seq FROM notify.read_marks m JOIN notify.notifications n ON n.seq = m.seq
		 WHERE m.user_id = $1 AND NOT m.is_read AND ` + visible + ` AND ` + notMuted + ` AND ` + shown(ArchivedExclude) + `
		 ORDER BY m.seq DESC LIMIT $5)
		) u ORDER BY seq DESC LIMIT $5) x`

var countsStatement = newAudienceStatement(countsQuery)

// seenMark is the user's seen mark (0 when none).
const seenMark = `(SELECT COALESCE(max(seen_up_to), 0) FROM notify.read_cursors WHERE user_id = $1)`

// Unread counts the user's unread, unmuted notifications and the unseen
// ones among them (each exactly up to UnreadCap) and says which seq the
// counts run through, from one snapshot.
func (s *Inbox) Unread(ctx context.Context, id notify.Identity) (Unread, error) {
	var u Unread
	roles := rolesArg(id)
	err := s.pool.QueryRow(ctx, countsStatement.For(roles), id.UserID, roles, 0, int64(1<<63-1), UnreadCap+1).
		Scan(&u.Through, &u.Count, &u.Unseen)
	if err != nil {
		return Unread{}, fmt.Errorf("count unread: %w", interpretError(err))
	}
	u.Count, u.HasMore = capped(u.Count)
	u.Unseen, u.UnseenHasMore = capped(u.Unseen)
	return u, nil
}

// capped is a count as the API gives it: exact up to UnreadCap, then
// UnreadCap and "more".
func capped(n int) (int, bool) {
	if n > UnreadCap {
		return UnreadCap, true
	}
	return n, false
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
	FROM notify.stream_head h, (` + countsQuery + `) u(through, count, unseen)`

var openingStatement = newAudienceStatement(openingQuery)

// Opening reads the user's mutes, unread count and the stream head at once.
func (s *Inbox) Opening(ctx context.Context, id notify.Identity) (Opening, error) {
	var o Opening
	var holes []int64
	roles := rolesArg(id)
	err := s.pool.QueryRow(ctx, openingStatement.For(roles), id.UserID, roles, 0, int64(1<<63-1), UnreadCap+1).
		Scan(&o.Muted, &o.Head.TruncatedBefore, &o.Unread.Through, &o.Unread.Count, &holes)
	if err != nil {
		return Opening{}, fmt.Errorf("read the stream's opening state: %w", interpretError(err))
	}
	o.Head.Holes = holesOf(holes)
	o.Head.LastSeq = o.Unread.Through
	o.Unread.Count, o.Unread.HasMore = capped(o.Unread.Count)
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
	return s.onNotification(ctx, id, notificationID, func(tx pgx.Tx, seq int64) error {
		return setRead(ctx, tx, id, seq, read)
	})
}

// onNotification runs change in a transaction with the seq of a published
// notification the user may see, and returns the seq; notify.ErrNotFound
// for any other.
func (s *Inbox) onNotification(ctx context.Context, id notify.Identity, notificationID string, change func(pgx.Tx, int64) error) (int64, error) {
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if seq, err = s.seqOf(ctx, tx, id, notificationID); err != nil {
			return err
		}
		return change(tx, seq)
	})
	return seq, err
}

// setRead marks seq read or unread for the user in tx.
func setRead(ctx context.Context, tx pgx.Tx, id notify.Identity, seq int64, read bool) error {
	// Serialize with read-all for this user: lock (or create) the cursor row.
	var upTo int64
	if err := tx.QueryRow(ctx, `INSERT INTO notify.read_cursors (user_id) VALUES ($1)
		ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id RETURNING read_up_to`, id.UserID).Scan(&upTo); err != nil {
		return fmt.Errorf("lock read cursor: %w", interpretError(err))
	}
	var err error
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
}

// setState writes one column of the user's notify.inbox_states row for seq
// (creating the row), col = value.
func setState(ctx context.Context, tx pgx.Tx, id notify.Identity, seq int64, col string, value any) error {
	_, err := tx.Exec(ctx, `INSERT INTO notify.inbox_states AS s (user_id, seq, `+col+`) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, seq) DO UPDATE SET `+col+` = EXCLUDED.`+col+`, updated_at = now()`, id.UserID, seq, value)
	if err != nil {
		return fmt.Errorf("set %s: %w", col, interpretError(err))
	}
	return nil
}

// SetArchived archives a notification for the user (or takes it back out of
// the archive) and returns its seq. An archived notification leaves the
// history (unless asked for) and is never unread or unseen. Idempotent:
// archiving again keeps the first moment.
func (s *Inbox) SetArchived(ctx context.Context, id notify.Identity, notificationID string, archived bool) (int64, error) {
	return s.onNotification(ctx, id, notificationID, func(tx pgx.Tx, seq int64) error {
		var at any
		if archived {
			at = time.Now()
			var already bool
			if err := tx.QueryRow(ctx, `SELECT `+inboxStateOf(`s.archived_at IS NOT NULL`), id.UserID, seq).Scan(&already); err != nil {
				return fmt.Errorf("read archive state: %w", interpretError(err))
			}
			if already {
				return nil
			}
		}
		return setState(ctx, tx, id, seq, "archived_at", at)
	})
}

// inboxStateOf is inboxState for a seq given as $2 rather than a row n.
func inboxStateOf(cond string) string {
	return `EXISTS (SELECT 1 FROM notify.inbox_states s WHERE s.user_id = $1 AND s.seq = $2 AND ` + cond + `)`
}

// Snooze hides a notification from the user's history and counts until
// until, and marks it unread, so it comes back unread then (WakeSnoozed
// announces it). Snoozing again moves the moment.
func (s *Inbox) Snooze(ctx context.Context, id notify.Identity, notificationID string, until time.Time) (int64, error) {
	return s.onNotification(ctx, id, notificationID, func(tx pgx.Tx, seq int64) error {
		if err := setRead(ctx, tx, id, seq, false); err != nil {
			return err
		}
		return setState(ctx, tx, id, seq, "snoozed_until", until)
	})
}

// Interact records that the user clicked the notification's action
// actionID, and marks it read. The error wraps notify.ErrInvalid when the
// notification has no such action.
func (s *Inbox) Interact(ctx context.Context, id notify.Identity, notificationID, actionID string) (int64, error) {
	return s.onNotification(ctx, id, notificationID, func(tx pgx.Tx, seq int64) error {
		var has bool
		if err := tx.QueryRow(ctx, `SELECT COALESCE(actions @> jsonb_build_array(jsonb_build_object('id', $2::text)), false)
			FROM notify.notifications WHERE seq = $1`, seq, actionID).Scan(&has); err != nil {
			return fmt.Errorf("read actions: %w", interpretError(err))
		}
		if !has {
			return fmt.Errorf("%w: notification %s has no action %q", notify.ErrInvalid, notificationID, actionID)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notify.inbox_states AS s (user_id, seq, interaction, interacted_at)
			VALUES ($1, $2, $3, now())
			ON CONFLICT (user_id, seq) DO UPDATE SET interaction = EXCLUDED.interaction,
				interacted_at = EXCLUDED.interacted_at, updated_at = now()`, id.UserID, seq, actionID); err != nil {
			return fmt.Errorf("record interaction: %w", interpretError(err))
		}
		return setRead(ctx, tx, id, seq, true)
	})
}

// Seen moves the user's seen mark to upTo (capped at the last published
// seq; it never moves back) and returns the mark now in force.
func (s *Inbox) Seen(ctx context.Context, id notify.Identity, upTo int64) (int64, error) {
	var mark int64
	err := s.pool.QueryRow(ctx, `INSERT INTO notify.read_cursors AS c (user_id, seen_up_to)
		VALUES ($1, LEAST($2, (SELECT last_seq FROM notify.stream_head)))
		ON CONFLICT (user_id) DO UPDATE SET seen_up_to = GREATEST(c.seen_up_to, EXCLUDED.seen_up_to)
		RETURNING seen_up_to`, id.UserID, upTo).Scan(&mark)
	if err != nil {
		return 0, fmt.Errorf("move seen mark: %w", interpretError(err))
	}
	return mark, nil
}

// Woken is a snooze that ended: the user's notification is back.
type Woken struct {
	UserID string
	Seq    int64
}

// WakeSnoozed ends up to limit snoozes whose moment has passed and returns
// them, for their users' streams to be told. Nodes call it concurrently:
// each snooze is ended (and returned) by one of them. The notifications
// were marked unread when snoozed, and history and counts show them from
// the moment on whether or not this has run.
func (s *Inbox) WakeSnoozed(ctx context.Context, limit int) ([]Woken, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT user_id, seq FROM notify.inbox_states
			WHERE snoozed_until <= now() ORDER BY snoozed_until LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE notify.inbox_states s SET snoozed_until = NULL, updated_at = now()
		FROM due WHERE s.user_id = due.user_id AND s.seq = due.seq
		RETURNING s.user_id, s.seq`, limit)
	if err != nil {
		return nil, fmt.Errorf("end due snoozes: %w", interpretError(err))
	}
	woken, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Woken])
	if err != nil {
		return nil, fmt.Errorf("end due snoozes: %w", interpretError(err))
	}
	return woken, nil
}

// Woke reads the notification of a snooze that ended, for w's user's
// streams: the user could see it when they snoozed it (its targets cannot
// change once published). notify.ErrNotFound when it is gone or expired
// since.
func (s *Inbox) Woke(ctx context.Context, w Woken) (notify.Notification, error) {
	n, err := scanNotification(s.pool.QueryRow(ctx, `SELECT `+columnsOf("n.")+`
		FROM notify.inbox_states st JOIN notify.notifications n ON n.seq = st.seq
		WHERE st.user_id = $1 AND st.seq = $2 AND notify.undeliverable_reason(n) IS NULL AND notify.current(n)`, w.UserID, w.Seq))
	if errors.Is(err, pgx.ErrNoRows) {
		return notify.Notification{}, notify.ErrNotFound
	}
	if err != nil {
		return notify.Notification{}, fmt.Errorf("read woken notification %d: %w", w.Seq, interpretError(err))
	}
	return n, nil
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
