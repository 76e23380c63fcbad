package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
)

// Queue runs the worker's statements on notify.queue_items.
type Queue struct {
	pool *pgxpool.Pool
}

// NewQueue returns the queue store over pool.
func NewQueue(pool *pgxpool.Pool) *Queue { return &Queue{pool: pool} }

// Claim is a queue item a worker holds. Attempts (after the claim) together
// with the worker id is the lease token: a completion that does not match it
// changes nothing.
type Claim struct {
	ItemID         int64
	NotificationID string
	Attempts       int
	MaxAttempts    int
}

// Claim takes up to limit due pending items for workerID in one statement.
func (q *Queue) Claim(ctx context.Context, workerID string, limit int) ([]Claim, error) {
	rows, err := q.pool.Query(ctx, `WITH due AS (
			SELECT id FROM notify.queue_items
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE notify.queue_items q
		SET status = 'processing', locked_by = $1, locked_at = now(), attempts = q.attempts + 1, updated_at = now()
		FROM due WHERE q.id = due.id
		RETURNING q.id, q.notification_id, q.attempts, q.max_attempts`, workerID, limit)
	if err != nil {
		return nil, fmt.Errorf("claim batch: %w", interpretError(err))
	}
	defer rows.Close()
	var claims []Claim
	for rows.Next() {
		var c Claim
		if err := rows.Scan(&c.ItemID, &c.NotificationID, &c.Attempts, &c.MaxAttempts); err != nil {
			return nil, fmt.Errorf("claim batch: scan: %w", err)
		}
		claims = append(claims, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim batch: %w", interpretError(err))
	}
	return claims, nil
}

// stampAndRing takes the rows of a CTE named "mine" (queue items just
// completed: id, notification_id, status, unpublished: the notification has
// no seq yet, read with its row by primary key), and for those now sent takes the
// publish turn (advisory lock 1852797545/3, held to commit, which serializes
// all publishers so seqs become visible in commit order), numbers them from
// notify.notification_seq, stamps those notifications, and rings every
// node's listener with the last seq. Nothing here rewrites a row that every
// batch touches: under a held snapshot such a row's versions pile up and
// every publish walks them (see notify.stream_head). Items that mine set aside
// (failed: the row slipped past the constraints and cannot be delivered
// consistently) get no seq. It answers a row for each notification it
// published, in seq order, with the columns the feed reads (feedColumns,
// so the worker can hand them to this process's feed without a read; see
// Batch.Published), each row led by the batch's summary (items in mine,
// last seq, -, "notification id: reason" of each item set aside, the sweep
// cursor); one row with the summary alone when it published nothing. Each
// published notification's roles go into notify.notification_roles, the
// index by which a user's role notifications are read (audience.go).
//
// todo takes "unpublished" from mine rather than joining the notifications
// again on "seq IS NULL": a plan cached while the table was small walked the
// seq index's NULL entries for that join, and every publish leaves one (the
// row's version before its seq) that a held snapshot keeps (2.9 s per batch
// of 500 two minutes into a held snapshot at 1,000/s).
//
// The lock comes before any nextval by data flow: numbered's rows (and so
// its nextval calls) exist only once turn has produced its row.
var stampAndRing = `, todo AS (
		SELECT m.notification_id AS id, m.id AS item_id FROM mine m WHERE m.status = 'sent' AND m.unpublished
	), turn AS MATERIALIZED (
		SELECT pg_advisory_xact_lock(` + publishTurnLock + `) AS taken WHERE EXISTS (SELECT 1 FROM todo)
	), numbered AS MATERIALIZED (
		SELECT todo.id, nextval('notify.notification_seq') AS seq
		FROM todo, turn ORDER BY todo.item_id
	), stamped AS (
		UPDATE notify.notifications n
		SET seq = numbered.seq, published_at = now()
		FROM numbered WHERE n.id = numbered.id
		RETURNING n.*, notify.undeliverable_reason(n) AS reason
	), role_index AS (
		INSERT INTO notify.notification_roles (role, seq)
		SELECT DISTINCT r.role, s.seq FROM stamped s CROSS JOIN LATERAL unnest(s.target_roles) AS r(role)
		WHERE s.target_roles IS NOT NULL
	), summary AS MATERIALIZED (
		SELECT (SELECT count(*) FROM mine) AS items, s.last,
			CASE WHEN s.last IS NOT NULL THEN pg_notify('notify_published', s.last::text) END AS rung,
			(SELECT array_agg(m.notification_id || ': ' || m.last_error ORDER BY m.id) FROM mine m WHERE m.status = 'failed') AS set_aside,
			c.next_attempt_at, c.id AS next_id
		FROM (SELECT max(seq) AS last FROM stamped) s
		LEFT JOIN (SELECT next_attempt_at, id FROM mine ORDER BY next_attempt_at DESC, id DESC LIMIT 1) c ON true
	)
	SELECT summary.*, ` + feedColumns + `
	FROM summary LEFT JOIN (stamped n CROSS JOIN LATERAL (SELECT n.reason) r) ON true
	ORDER BY n.seq`

// publishTurnLock is the advisory lock (two int4 keys) a publisher holds
// from taking its seqs to its commit.
const publishTurnLock = `1852797545, 3`

// setAside is the queue item's new state given r, the notification's
// notify.undeliverable_reason: sent when it can be delivered, failed (for
// good: another attempt would read the same row) with the reason otherwise.
const (
	setAsideStatus = `CASE WHEN r.reason IS NULL THEN 'sent' ELSE 'failed' END`
	setAsideError  = `CASE WHEN r.reason IS NOT NULL THEN 'not delivered: ' || r.reason || ' (fix the row, then retry the item)' END`
)

// publishStatement publishes the claims (ids, attempts) that workerID
// still holds: the lease token must match, so a stalled worker cannot
// complete an item someone else took up.
var publishStatement = `WITH mine AS (
		UPDATE notify.queue_items q
		SET status = ` + setAsideStatus + `, sent_at = CASE WHEN r.reason IS NULL THEN now() END, updated_at = now(),
			locked_by = NULL, locked_at = NULL, last_error = ` + setAsideError + `
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts),
			LATERAL (SELECT notify.undeliverable_reason(n) AS reason, n.seq IS NULL AS unpublished FROM notify.notifications n
			         WHERE n.id = (SELECT notification_id FROM notify.queue_items WHERE id = c.id)) r
		WHERE q.id = c.id AND q.attempts = c.attempts AND q.status = 'processing' AND q.locked_by = $3
		RETURNING q.id, q.notification_id, q.status, q.last_error, q.next_attempt_at, r.unpublished
	)` + stampAndRing

// claimAndPublish is the fast path: it claims due items with FOR UPDATE
// SKIP LOCKED and publishes them in the same statement, so each queue item
// is written once and each batch commits once. Nothing is ever left in
// processing: if the statement fails, nothing happened.
//
// scope bounds the claim's walk of queue_items_claim_idx. Each item the
// workers took leaves a dead entry there until vacuum removes it, and while
// some session holds an old snapshot vacuum removes none: a walk from the
// start of the index then reads every item queued since that snapshot was
// taken, on every claim. recentlyDue reads only items due in the last
// moments ($2, a lookback), which is where new work appears (an item is due
// from its INSERT statement's start, or from when it became pending again);
// sweepFrom reads from a cursor ($2, $3) and finds what the recent walk
// missed (an item whose producer's transaction outlasted the lookback, or one
// left while no worker ran), a few times a minute.
func claimAndPublish(scope string) string {
	return `WITH due AS (
		SELECT id, notification_id FROM notify.queue_items
		WHERE status = 'pending' AND next_attempt_at <= now() AND ` + scope + `
		ORDER BY next_attempt_at, id
		LIMIT $1
		FOR UPDATE SKIP LOCKED
	), mine AS (
		UPDATE notify.queue_items q
		SET status = ` + setAsideStatus + `, attempts = q.attempts + 1, sent_at = CASE WHEN r.reason IS NULL THEN now() END,
			updated_at = now(), last_error = ` + setAsideError + `
		FROM due, LATERAL (SELECT notify.undeliverable_reason(n) AS reason, n.seq IS NULL AS unpublished FROM notify.notifications n
		                   WHERE n.id = due.notification_id) r
		WHERE q.id = due.id
		RETURNING q.id, q.notification_id, q.status, q.last_error, q.next_attempt_at, r.unpublished
	)` + stampAndRing
}

const (
	recentlyDue = `next_attempt_at >= least(now() - $2::interval, $3::timestamptz) AND ` + inClaimTurn
	sweepFrom   = `(next_attempt_at, id) > ($2::timestamptz, $3::bigint)`
	// inClaimTurn takes the claim turn on the first pending candidate.
	inClaimTurn = `CASE WHEN status = 'pending' THEN pg_advisory_xact_lock(` + claimTurnLock + `) IS NOT NULL END`
)

// claimTurnLock is the advisory lock (two int4 keys) a recent claim takes,
// held to commit, before it locks its first item: recent claims that find
// work take turns, so notifications committed one after another are
// published in that order, whichever worker each producer's ring woke.
//
// Without it, two workers woken by two inserts a moment apart each claim
// one (SKIP LOCKED) and race for the publish turn: the later insert could
// take the lower seq. With it, the claim that finds the later insert holds
// the turn, so the earlier one is either published already (its claim
// committed before the turn passed on) or in this claim's snapshot and
// unlocked, and claimed first (due order). The lock is a filter on the
// candidate rows, evaluated for a pending one only (the CASE keeps the
// planner from testing it before the status, on an index entry whose row
// was sent since), so a claim that finds nothing due takes no turn; the
// sweep, whose walk a held snapshot can make long, takes none either.
const claimTurnLock = `1852797545, 4`

var (
	claimRecentStatement = claimAndPublish(recentlyDue)
	sweepStatement       = claimAndPublish(sweepFrom)
	sweepInTurnStatement = claimAndPublish(sweepFrom + ` AND ` + inClaimTurn)
)

// Batch is what one claim-and-publish statement did.
type Batch struct {
	// Items is how many queue items it completed (sent or set aside).
	Items int
	// LastSeq is the last seq it assigned (0 when none).
	LastSeq int64
	// SetAside is "notification id: reason" for each item failed at once
	// (the row cannot be delivered consistently, see
	// notify.undeliverable_reason).
	SetAside []string
	// Next is where a sweep continues: after the last item claimed.
	Next SweepCursor
	// Published is what the batch published, in seq order, as the feed
	// would read it (postgres.Notifications.Published): the worker hands it
	// to its own process's feed, which then need not read it back. Nil when
	// a row turned undeliverable between the claim and its stamping (the
	// feed's read sets it aside).
	Published []notify.Notification
}

// SweepCursor is a position in the claim index (due time, item id). The zero
// value is the start.
type SweepCursor struct {
	DueAt time.Time
	ID    int64
}

// ClaimAndPublish claims up to limit items that fell due within lookback
// and publishes them in one statement.
func (q *Queue) ClaimAndPublish(ctx context.Context, limit int, lookback time.Duration) (Batch, error) {
	return q.ClaimAndPublishFrom(ctx, limit, lookback, time.Time{})
}

// ClaimAndPublishFrom is ClaimAndPublish for a worker that is behind: it
// also claims items due since from (when it is earlier than lookback ago),
// the due time of the last item of its previous batch, which was full. A
// worker that falls more than lookback behind so goes on in due order from
// where it was, rather than publishing the newest items first and leaving
// the older ones to the next sweep. The walk still starts where this worker
// last claimed, past the dead entries before it.
func (q *Queue) ClaimAndPublishFrom(ctx context.Context, limit int, lookback time.Duration, from time.Time) (Batch, error) {
	var since *time.Time // NULL: least() takes lookback alone
	if !from.IsZero() {
		since = &from
	}
	b, err := q.claimAndPublish(ctx, claimRecentStatement, limit, lookback, since)
	if err != nil {
		return Batch{}, fmt.Errorf("claim and publish batch: %w", err)
	}
	return b, nil
}

// SweepAndPublish claims up to limit due items after from, wherever they
// are in the queue, and publishes them. Run it until it returns fewer than
// limit items, passing each batch's Next to the following call.
func (q *Queue) SweepAndPublish(ctx context.Context, limit int, from SweepCursor) (Batch, error) {
	return q.sweep(ctx, sweepStatement, limit, from)
}

// SweepInTurn is SweepAndPublish taking the claim turn, as a recent claim
// does, once it finds a pending item: a worker's first batches, which
// publish what was left while no worker ran, so take turns with the other
// workers' recent claims and publish in due order with them. (The periodic
// sweep does not: beside a held snapshot its walk is long, and the recent
// claims must not wait for it.)
func (q *Queue) SweepInTurn(ctx context.Context, limit int, from SweepCursor) (Batch, error) {
	return q.sweep(ctx, sweepInTurnStatement, limit, from)
}

func (q *Queue) sweep(ctx context.Context, statement string, limit int, from SweepCursor) (Batch, error) {
	at := from.DueAt
	if at.IsZero() {
		at = time.Unix(0, 0).AddDate(-1000, 0, 0) // before any item
	}
	b, err := q.claimAndPublish(ctx, statement, limit, at, from.ID)
	if err != nil {
		return Batch{}, fmt.Errorf("sweep the queue: %w", err)
	}
	if b.Items == 0 {
		b.Next = from
	}
	return b, nil
}

func (q *Queue) claimAndPublish(ctx context.Context, statement string, args ...any) (Batch, error) {
	rows, err := q.pool.Query(ctx, statement, args...)
	if err != nil {
		return Batch{}, interpretError(err)
	}
	return scanBatch(rows)
}

// scanBatch reads the rows of a statement ending in stampAndRing: the
// summary from the first, a published notification from each that has one
// (the summary's lone row, when nothing was published, has a NULL seq: the
// third of feedColumns).
func scanBatch(rows pgx.Rows) (Batch, error) {
	defer rows.Close()
	var b Batch
	var last, nextID *int64
	var nextAt *time.Time
	summary := []any{&b.Items, &last, nil, &b.SetAside, &nextAt, &nextID}
	seqColumn := len(summary) + 2
	undeliverable := false
	for rows.Next() {
		if rows.RawValues()[seqColumn] == nil {
			rest := make([]any, len(rows.FieldDescriptions())-len(summary)) // skipped
			if err := rows.Scan(append(summary, rest...)...); err != nil {
				return Batch{}, fmt.Errorf("scan publish summary: %w", err)
			}
			continue
		}
		n, reason, err := scanPublished(rows, summary...)
		if err != nil {
			return Batch{}, fmt.Errorf("scan published notification: %w", err)
		}
		summary = make([]any, len(summary)) // read once
		undeliverable = undeliverable || reason != nil
		b.Published = append(b.Published, n)
	}
	if err := rows.Err(); err != nil {
		return Batch{}, interpretError(err)
	}
	if undeliverable {
		b.Published = nil
	}
	if last != nil {
		b.LastSeq = *last
	}
	if nextAt != nil && nextID != nil {
		b.Next = SweepCursor{DueAt: *nextAt, ID: *nextID}
	}
	return b, nil
}

// Publish publishes the claims workerID still holds and returns how many
// were still held, the last seq assigned (0 when none) and the items it set
// aside, as ClaimAndPublish does.
func (q *Queue) Publish(ctx context.Context, workerID string, claims []Claim) (held int, lastSeq int64, setAside []string, err error) {
	ids := make([]int64, len(claims))
	attempts := make([]int32, len(claims))
	for i, c := range claims {
		ids[i], attempts[i] = c.ItemID, int32(c.Attempts)
	}
	rows, err := q.pool.Query(ctx, publishStatement, ids, attempts, workerID)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("publish batch: %w", interpretError(err))
	}
	b, err := scanBatch(rows)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("publish batch: %w", err)
	}
	return b.Items, b.LastSeq, b.SetAside, nil
}

// Fail records a failed attempt of a claim workerID still holds: back to
// pending until nextAttempt, or failed once attempts reached max_attempts.
// It returns the new status, or "" when the claim was no longer held.
func (q *Queue) Fail(ctx context.Context, workerID string, c Claim, reason string, nextAttempt time.Time) (string, error) {
	rows, err := q.pool.Query(ctx, `UPDATE notify.queue_items
		SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
		    last_error = $4, next_attempt_at = $5, locked_by = NULL, locked_at = NULL, updated_at = now()
		WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND status = 'processing'
		RETURNING status`, c.ItemID, c.Attempts, workerID, reason, nextAttempt)
	if err != nil {
		return "", fmt.Errorf("record failed attempt: %w", interpretError(err))
	}
	defer rows.Close()
	status := ""
	for rows.Next() {
		if err := rows.Scan(&status); err != nil {
			return "", fmt.Errorf("record failed attempt: %w", err)
		}
	}
	return status, rows.Err()
}

// Release hands back claims workerID still holds without counting the
// attempt, for a worker that is shutting down.
func (q *Queue) Release(ctx context.Context, workerID string, claims []Claim) (int64, error) {
	ids := make([]int64, len(claims))
	attempts := make([]int32, len(claims))
	for i, c := range claims {
		ids[i], attempts[i] = c.ItemID, int32(c.Attempts)
	}
	tag, err := q.pool.Exec(ctx, `UPDATE notify.queue_items q
		SET status = 'pending', attempts = q.attempts - 1, locked_by = NULL, locked_at = NULL, updated_at = now()
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts)
		WHERE q.id = c.id AND q.attempts = c.attempts AND q.status = 'processing' AND q.locked_by = $3`,
		ids, attempts, workerID)
	if err != nil {
		return 0, fmt.Errorf("release claims: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}

// RescueExpired takes back items held in processing for longer than lease
// (their worker crashed or stalled): pending again, or failed when they have
// used their attempts.
func (q *Queue) RescueExpired(ctx context.Context, lease time.Duration) (int64, error) {
	tag, err := q.pool.Exec(ctx, `UPDATE notify.queue_items
		SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
		    last_error = 'lease expired: ' || locked_by || ' did not finish within ' || $2,
		    locked_by = NULL, locked_at = NULL, next_attempt_at = now(), updated_at = now()
		WHERE status = 'processing' AND locked_at < now() - $1::interval`, lease, lease.String())
	if err != nil {
		return 0, fmt.Errorf("rescue expired leases: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}

// NextDue returns when the earliest pending item due after lookback ago
// becomes due (ok=false when there is none). Like the recent claim, it does
// not walk the claim index from its start (see claimAndPublish); what lies
// before is the sweep's.
func (q *Queue) NextDue(ctx context.Context, lookback time.Duration) (due time.Time, ok bool, err error) {
	var t *time.Time
	if err := q.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM notify.queue_items
		WHERE status = 'pending' AND next_attempt_at > now() - $1::interval`, lookback).Scan(&t); err != nil {
		return time.Time{}, false, fmt.Errorf("next due item: %w", interpretError(err))
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}
