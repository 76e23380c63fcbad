package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
)

// Notifications reads and writes notify.notifications.
type Notifications struct {
	pool    *pgxpool.Pool
	replica *Replica // nil: every read on pool
	// read is the fence of the latest stream reads (with a replica).
	read *fenceBox
}

// NewNotifications returns the notification store over pool.
func NewNotifications(pool *pgxpool.Pool) *Notifications { return &Notifications{pool: pool} }

// WithReplica returns a copy of the store that reads ReplayAt from r when
// r can answer it, and reads the published stream (Published, Head) with
// a fence for it (ReadFence).
func (s *Notifications) WithReplica(r *Replica) *Notifications {
	c := *s
	c.replica, c.read = r, &fenceBox{}
	return &c
}

// ReadFence is a fence past every notification this store has read from
// the published stream so far (Published, Head): a replay as of it, read
// after a stream subscribed, holds every notification the feed had handed
// to the hub before. It is usually behind the primary's WAL by the feed's
// last moments, which a replica has mostly replayed already: a replay
// rarely waits for it. Zero without a replica, or before the first read.
func (s *Notifications) ReadFence() Fence {
	if s.read == nil {
		return Fence{}
	}
	return s.read.get()
}

// columnsOf is the select list scanned by scanNotification, each column
// qualified with alias ("" or "n.").
func columnsOf(alias string) string {
	return strings.NewReplacer("@", alias).Replace(`@id, COALESCE(@seq, 0), COALESCE(@target_user_id, ''), COALESCE(@target_roles, '{}'),
	COALESCE(@module, ''), COALESCE(@action_type, ''), COALESCE(@details, ''), @message, @severity, @data,
	COALESCE(@idempotency_key, ''), @created_at, COALESCE(@published_at, 'epoch'),
	COALESCE(@collapse_key, ''), @expires_at, @actions`)
}

// inboxColumns are the destinations of the inbox columns (collapse_key,
// expires_at, actions) that follow the others in columnsOf and feedColumns;
// setInbox moves them into n.
type inboxColumns struct {
	collapseKey string
	expiresAt   *time.Time
	actions     []byte
}

func (c *inboxColumns) dest() []any { return []any{&c.collapseKey, &c.expiresAt, &c.actions} }

func (c *inboxColumns) setInbox(n *notify.Notification) {
	n.CollapseKey = c.collapseKey
	if c.expiresAt != nil {
		n.ExpiresAt = *c.expiresAt
	}
	n.Actions = notify.ParseActions(c.actions)
}

// notificationColumns is columnsOf without an alias.
var notificationColumns = columnsOf("")

// scanNotification scans a row of notificationColumns, then extra.
func scanNotification(row pgx.Row, extra ...any) (notify.Notification, error) {
	var n notify.Notification
	var published time.Time
	var inbox inboxColumns
	dest := append([]any{&n.ID, &n.Seq, &n.Target.UserID, &n.Target.Roles, &n.Module, &n.ActionType, &n.Details,
		&n.Message, &n.Severity, &n.Data, &n.IdempotencyKey, &n.CreatedAt, &published}, inbox.dest()...)
	err := row.Scan(append(dest, extra...)...)
	inbox.setInbox(&n)
	if published.Unix() > 0 {
		n.PublishedAt = published
	}
	if len(n.Target.Roles) == 0 {
		n.Target.Roles = nil
	}
	return n, err
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// columnValues is what n stores, in notify.send's argument order (message,
// target_user_id, target_roles, module, action_type, details, severity,
// data, idempotency_key, then collapse_key, expires_at, actions, which
// follow queue_when_busy there): empty texts, lists and times as NULL, no data (or JSON
// null, which notify.Validate accepts as "no data") as {} since the column
// holds objects only, no severity as medium.
func columnValues(n notify.Notification) []any {
	var roles any
	if len(n.Target.Roles) > 0 {
		roles = n.Target.Roles
	}
	data := n.Data
	if trimmed := bytes.TrimSpace(data); len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		data = json.RawMessage(`{}`)
	}
	var expires, actions any
	if !n.ExpiresAt.IsZero() {
		expires = n.ExpiresAt
	}
	if len(n.Actions) > 0 {
		actions = n.Actions
	}
	return []any{n.Message, nullIfEmpty(n.Target.UserID), roles, nullIfEmpty(n.Module), nullIfEmpty(n.ActionType),
		nullIfEmpty(n.Details), string(cmp.Or(n.Severity, notify.SeverityMedium)), data, nullIfEmpty(n.IdempotencyKey),
		nullIfEmpty(n.CollapseKey), expires, actions}
}

// Insert adds a notification (its queue item follows by trigger, pending
// until a worker publishes it) and returns it as stored. With an
// idempotency key that was used before, it returns the earlier notification
// and created=false; if that one differs in what it says or whom it
// targets, the error wraps notify.ErrConflict.
func (s *Notifications) Insert(ctx context.Context, n notify.Notification) (stored notify.Notification, created bool, err error) {
	row := s.pool.QueryRow(ctx, `INSERT INTO notify.notifications
		(message, target_user_id, target_roles, module, action_type, details, severity, data, idempotency_key,
		 collapse_key, expires_at, actions)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (idempotency_key) DO NOTHING
		RETURNING `+notificationColumns, columnValues(n)...)
	stored, err = scanNotification(row)
	if err == nil {
		return stored, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return notify.Notification{}, false, fmt.Errorf("insert notification: %w", interpretError(err))
	}
	// The key was taken: answer with the notification it created.
	stored, err = scanNotification(s.pool.QueryRow(ctx,
		`SELECT `+notificationColumns+` FROM notify.notifications WHERE idempotency_key = $1`, n.IdempotencyKey))
	if err != nil {
		return notify.Notification{}, false, fmt.Errorf("read notification by idempotency key: %w", interpretError(err))
	}
	return stored, false, sameAsBefore(stored, n)
}

// sendStatement calls notify.send (migrations 00003, 00004) with
// columnValues, queue_when_busy.
var sendStatement = `SELECT ` + columnsOf("(s.notification).") + `, s.created
	FROM notify.send($1::text, $2::text, $3::text[], $4::text, $5::text, $6::text, $7::text, $8::jsonb, $9::text,
		queue_when_busy => true, collapse_key => $10::text, expires_at => $11::timestamptz, actions => $12::jsonb) s`

// Send adds a notification born published: notify.send inserts it and
// gives it its seq in the same transaction, under the workers' publish
// turn, so one commit makes it durable, numbered and rung to every node's
// feed, with no worker between. While another publisher holds the turn, or
// notifications queued in the last seconds still wait for the workers (it
// would be numbered before them), it does not wait: the notification is
// queued as Insert queues it (Seq 0), behind them,
// and the workers publish it in their next batch, so under load publishes
// share commits instead of taking the turn one commit at a time. It answers
// as Insert does: a repeated idempotency key returns the earlier
// notification (published or not) and publishes nothing.
func (s *Notifications) Send(ctx context.Context, n notify.Notification) (stored notify.Notification, created bool, err error) {
	stored, err = scanNotification(s.pool.QueryRow(ctx, sendStatement, columnValues(n)...), &created)
	if err != nil {
		return notify.Notification{}, false, fmt.Errorf("send notification: %w", interpretError(err))
	}
	if created {
		return stored, true, nil
	}
	return stored, false, sameAsBefore(stored, n)
}

// sameAsBefore wraps notify.ErrConflict when stored, the notification an
// idempotency key made before, differs from n in what it says or whom it
// targets.
func sameAsBefore(stored, n notify.Notification) error {
	if !sameContent(stored, n, cmp.Or(n.Severity, notify.SeverityMedium)) {
		return fmt.Errorf("%w: idempotency key %q was used for a different notification", notify.ErrConflict, n.IdempotencyKey)
	}
	return nil
}

func sameContent(a, b notify.Notification, severity notify.Severity) bool {
	return a.Message == b.Message && a.Severity == severity && a.Target.UserID == b.Target.UserID &&
		slices.Equal(a.Target.Roles, b.Target.Roles) && a.Module == b.Module && a.ActionType == b.ActionType
}

// Undeliverable is a published row that cannot be delivered consistently
// (it slipped past the table's constraints, or was changed after it was
// published): nobody sees it (notify.visible_to), and the feed sets it aside.
type Undeliverable struct {
	Seq            int64
	NotificationID string
	Reason         string
}

// feedQuery reads the published stream after a seq. Every column is made
// safe to scan whatever the row holds, so one odd row cannot fail the page;
// rows that notify.undeliverable_reason refuses come back with the reason.
// feedFencedQuery (with a replica) puts the fence of the statement's
// snapshot, read once, in front of every row.
var (
	feedColumns = `r.reason, n.id, n.seq, COALESCE(n.target_user_id, ''),
		CASE WHEN r.reason IS NULL THEN COALESCE(n.target_roles, '{}') ELSE '{}' END,
		COALESCE(n.module, ''), COALESCE(n.action_type, ''), COALESCE(n.details, ''), COALESCE(n.message, ''),
		COALESCE(n.severity, ''), CASE WHEN r.reason IS NULL THEN n.data ELSE '{}' END,
		COALESCE(n.idempotency_key, ''), COALESCE(n.created_at, 'epoch'), COALESCE(n.published_at, 'epoch'),
		COALESCE(n.collapse_key, ''), n.expires_at, CASE WHEN r.reason IS NULL THEN n.actions END`
	feedFrom = `notify.notifications n CROSS JOIN LATERAL (SELECT notify.undeliverable_reason(n) AS reason) r
	WHERE n.seq > $1
	ORDER BY n.seq LIMIT $2`
	feedQuery = `SELECT ` + feedColumns + `
	FROM ` + feedFrom
	feedFencedQuery = `WITH f(lsn, history) AS MATERIALIZED (SELECT ` + fenceColumns + `)
	SELECT f.lsn, f.history, ` + feedColumns + `
	FROM f, ` + feedFrom
)

// Published returns published notifications with seq > after, in seq order,
// at most limit rows in all: the feed every node reads after a publish. Rows
// that cannot be delivered come back apart, in bad (each row is in exactly
// one of the two lists); last is the highest seq read (0 when none).
func (s *Notifications) Published(ctx context.Context, after int64, limit int) (ns []notify.Notification, bad []Undeliverable, last int64, err error) {
	if s.read == nil {
		return readPublished(ctx, s.pool, feedQuery, after, limit)
	}
	var fence Fence
	// Noted before the rows are handed on: see ReadFence.
	defer func() {
		if err == nil {
			s.read.note(fence)
		}
	}()
	return readPublished(ctx, s.pool, feedFencedQuery, after, limit, &fence.LSN, &fence.History)
}

// PublishedOn is Published read on conn, a connection of the caller's (the
// listener's, which has just heard the ring), with no replica's fence: for
// a node whose reads have no replica.
func PublishedOn(ctx context.Context, conn *pgx.Conn, after int64, limit int) (ns []notify.Notification, bad []Undeliverable, last int64, err error) {
	return readPublished(ctx, conn, feedQuery, after, limit)
}

func readPublished(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, query string, after int64, limit int, before ...any) (ns []notify.Notification, bad []Undeliverable, last int64, err error) {
	rows, err := q.Query(ctx, query, after, limit)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read published feed: %w", interpretError(err))
	}
	defer rows.Close()
	ns = make([]notify.Notification, 0, min(limit, 256))
	for rows.Next() {
		n, reason, err := scanPublished(rows, before...)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("scan published notification after seq %d: %w", last, err)
		}
		last = n.Seq
		if reason != nil {
			bad = append(bad, Undeliverable{Seq: n.Seq, NotificationID: n.ID, Reason: *reason})
			continue
		}
		ns = append(ns, n)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, 0, fmt.Errorf("read published feed: %w", interpretError(err))
	}
	return ns, bad, last, nil
}

// scanPublished scans a row of feedColumns that follow the columns scanned
// into before. reason is non-nil for a row that cannot be delivered (then
// only n.ID and n.Seq are set).
func scanPublished(rows pgx.Rows, before ...any) (n notify.Notification, reason *string, err error) {
	var published time.Time
	var inbox inboxColumns
	dest := make([]any, 0, len(before)+17)
	dest = append(dest, before...)
	dest = append(dest, &reason, &n.ID, &n.Seq, &n.Target.UserID, &n.Target.Roles, &n.Module, &n.ActionType, &n.Details,
		&n.Message, &n.Severity, &n.Data, &n.IdempotencyKey, &n.CreatedAt, &published)
	if err := rows.Scan(append(dest, inbox.dest()...)...); err != nil {
		return notify.Notification{}, nil, err
	}
	if reason != nil {
		return notify.Notification{ID: n.ID, Seq: n.Seq}, reason, nil
	}
	n.PublishedAt = published
	inbox.setInbox(&n)
	if len(n.Target.Roles) == 0 {
		n.Target.Roles = nil
	}
	return n, nil, nil
}

// SetAside fails the queue item of a published notification that cannot be
// delivered, with the reason, so admins find it with the other failures.
// Every node's feed does this for the same row: the first one writes.
func (s *Notifications) SetAside(ctx context.Context, notificationID, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE notify.queue_items
		SET status = 'failed', last_error = $2, locked_by = NULL, locked_at = NULL, updated_at = now()
		WHERE notification_id = $1 AND (status <> 'failed' OR last_error IS DISTINCT FROM $2)`, notificationID, reason)
	if err != nil {
		return fmt.Errorf("set aside notification %s: %w", notificationID, interpretError(err))
	}
	return nil
}

// replayQuery selects what one identity may see after a seq, leaving out
// what it muted (critical always comes through) and what expired, reading only the
// identity's audience (audience.go). notify.visible_to is
// notify.Target.Matches in SQL; a property test holds the two together.
var replayQuery = `SELECT ` + columnsOf("n.") + `
	FROM (` + audienceQuery("@seq > $3 AND @seq <= $4", `(n.severity = 'critical' OR n.module IS NULL OR NOT n.module = ANY(COALESCE(
	       (SELECT muted_modules FROM notify.preferences WHERE user_id = $1), '{}'))) AND notify.current(n)`, "ASC") + `) a
	JOIN notify.notifications n ON n.seq = a.seq
	ORDER BY n.seq`

var replayStatement = newAudienceStatement(replayQuery)

// Replay returns the notifications for id with after < seq <= upTo, in seq
// order, at most limit of them, read from the primary.
func (s *Notifications) Replay(ctx context.Context, id notify.Identity, after, upTo int64, limit int) ([]notify.Notification, error) {
	return s.replayOn(ctx, s.pool, id, after, upTo, limit)
}

// ReplayAt is Replay as of fence (ReadFence, read after the stream
// subscribed): from the replica when it has replayed past it, else from
// the primary. Either way it holds every notification the primary had
// committed at the fence.
func (s *Notifications) ReplayAt(ctx context.Context, fence Fence, id notify.Identity, after, upTo int64, limit int) ([]notify.Notification, error) {
	if s.replica == nil {
		return s.Replay(ctx, id, after, upTo, limit)
	}
	var ns []notify.Notification
	err := s.replica.route(ctx, ReadReplay, fence, s.pool, func(ctx context.Context, q querier) error {
		var err error
		ns, err = s.replayOn(ctx, q, id, after, upTo, limit)
		return err
	})
	return ns, err
}

func (s *Notifications) replayOn(ctx context.Context, q querier, id notify.Identity, after, upTo int64, limit int) ([]notify.Notification, error) {
	roles := rolesArg(id)
	rows, err := q.Query(ctx, replayStatement.For(roles), id.UserID, roles, after, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("replay for %s: %w", id.UserID, interpretError(err))
	}
	return collectNotifications(rows, limit)
}

func collectNotifications(rows pgx.Rows, capacity int) ([]notify.Notification, error) {
	defer rows.Close()
	out := make([]notify.Notification, 0, min(capacity, 256))
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, fmt.Errorf("scan notification: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read notifications: %w", interpretError(err))
	}
	return out, nil
}

// Head is the stream's current position.
type Head struct {
	// LastSeq is the last seq published and committed.
	LastSeq int64
	// TruncatedBefore: retention deleted notifications up to this seq.
	TruncatedBefore int64
	// Holes are the seqs never numbered here because a new history began
	// (a restore, a failover): a resume point in one is told it is lost.
	Holes Holes
	// Fence is the primary's position when the head was read, for reads
	// that a replica may answer (fence.go); zero without a replica.
	Fence Fence
}

// Head reads the stream's position (and a fence, with a replica).
func (s *Notifications) Head(ctx context.Context) (Head, error) {
	var h Head
	var holes []int64
	var err error
	if s.replica == nil {
		err = s.pool.QueryRow(ctx, `SELECT last_seq, truncated_before, `+holesColumn+` FROM notify.stream_head`).
			Scan(&h.LastSeq, &h.TruncatedBefore, &holes)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT last_seq, truncated_before, `+holesColumn+`, `+fenceColumns+` FROM notify.stream_head`).
			Scan(&h.LastSeq, &h.TruncatedBefore, &holes, &h.Fence.LSN, &h.Fence.History)
		if err == nil {
			s.read.note(h.Fence) // the feed starts from a head
		}
	}
	if err != nil {
		return Head{}, fmt.Errorf("read stream head: %w", interpretError(err))
	}
	h.Holes = holesOf(holes)
	return h, nil
}

// DeletePublishedBefore deletes up to limit published notifications (lowest
// seqs first) published before cutoff, with their queue items, and records
// how far retention has gone (a row in notify.retention_marks). Unpublished
// notifications (and so failed items) are never touched. It returns how
// many it deleted.
func (s *Notifications) DeletePublishedBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var n int64
	// The oldest $2 published rows above the floor (every seq up to it is
	// gone), by seq, then the run of them published before the cutoff:
	// this reads at most $2 index entries whether or not anything is old
	// enough (a filter on published_at while walking seqs reads the whole
	// table when nothing is: 101 ms at 200,000 rows against 0.7 ms).
	// Starting above the floor skips the entries of rows already deleted,
	// which stay in the index while any session holds a snapshot older
	// than their deletion. The floor stops below any row of the run that
	// someone else had locked (it is skipped, never waited for), so the
	// next batch takes it up; the mark's seq, what resumes are told was
	// truncated, is the highest seq deleted.
	//
	// The batch's rows are found again by "= ANY (array)", one probe of a
	// unique index per row, rather than by joining the batch: a join's plan
	// follows the statistics, and right after a vacuum that saw the table
	// nearly empty (retention had just caught up) they said 2 rows in 4,367
	// pages, so the planner joined a 50,000-row batch to a sequential scan of
	// the table per row, and a batch ran for minutes.
	err := s.pool.QueryRow(ctx, `WITH last AS MATERIALIZED (
			SELECT COALESCE(max(seq), 0) AS seq,
			       COALESCE((SELECT floor FROM notify.retention_marks ORDER BY seq DESC LIMIT 1), 0) AS floor
			FROM notify.retention_marks
		), oldest AS MATERIALIZED (
			SELECT id, seq, published_at < $1 AS old FROM notify.notifications
			WHERE seq > (SELECT floor FROM last)
			ORDER BY seq LIMIT $2
		), run AS MATERIALIZED (
			SELECT id, seq FROM oldest
			WHERE seq < COALESCE((SELECT min(seq) FROM oldest WHERE NOT old), 9223372036854775807)
		), doomed AS (
			SELECT n.id FROM notify.notifications n
			WHERE n.seq = ANY ((SELECT array_agg(seq) FROM run)::bigint[])
			FOR UPDATE OF n SKIP LOCKED
		), gone AS (
			DELETE FROM notify.notifications n
			WHERE n.id = ANY ((SELECT array_agg(id) FROM doomed)::uuid[])
			RETURNING n.id, n.seq
		), roles_gone AS (
			DELETE FROM notify.notification_roles
			WHERE seq BETWEEN (SELECT min(seq) FROM gone) AND (SELECT max(seq) FROM gone)
			  AND seq IN (SELECT seq FROM gone)
		), mark AS (
			SELECT GREATEST(l.seq, (SELECT max(seq) FROM gone)) AS seq,
			       GREATEST(l.floor, COALESCE((SELECT min(r.seq) - 1 FROM run r WHERE r.id NOT IN (SELECT id FROM gone)),
			                                  (SELECT max(seq) FROM gone))) AS floor
			FROM last l WHERE EXISTS (SELECT 1 FROM gone)
		), marked AS (
			INSERT INTO notify.retention_marks AS m (seq, floor) SELECT seq, floor FROM mark
			ON CONFLICT (seq) DO UPDATE SET floor = GREATEST(m.floor, EXCLUDED.floor), marked_at = now()
			RETURNING seq
		), unmarked AS (
			DELETE FROM notify.retention_marks WHERE seq < (SELECT seq FROM marked)
		)
		SELECT count(*) FROM gone`, cutoff, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("delete old notifications: %w", interpretError(err))
	}
	return n, nil
}
