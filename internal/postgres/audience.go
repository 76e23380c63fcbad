package postgres

import (
	"context"
	"fmt"
	"strings"
)

// A user's audience is three kinds of rows, each an index range in seq
// order: the notifications that name the user (notifications_target_user_idx),
// the broadcasts (notifications_broadcast_idx), and, for each of the user's
// roles, the notifications that name the role (notify.notification_roles,
// written once per role when a notification is published). Reading each
// range up to the limit and merging them costs what the user may see, not
// what the table holds: a user who gets 20 notifications among 10 million
// reads about 20 rows.
//
// audienceQuery builds the statement that returns the seqs of up to $5 rows
// the identity ($1 user id, $2 roles) may see (notify.visible_to, taken
// apart below), in the
// range rangeCond over @seq ($3 and $4 are its bounds), that also pass
// filter (SQL over n), ordered by dir ("ASC" or "DESC"). Each range is read
// only until it has found $5 rows that pass; the first $5 of their union are
// the first $5 of the whole audience, so the answer is exact.
func audienceQuery(rangeCond, filter, dir string) string {
	where := deliverable
	if filter != "" {
		where += " AND " + filter
	}
	// The range is written on the column each index is ordered by, so the
	// scan starts at the range instead of filtering its way there.
	r := strings.NewReplacer("@where", where, "@dir", dir,
		"@nrange", strings.ReplaceAll(rangeCond, "@seq", "n.seq"),
		"@rrange", strings.ReplaceAll(rangeCond, "@seq", "nr.seq"))
	return r.Replace(`SELECT seq FROM (
		(SELECT n.seq FROM notify.notifications n
		 WHERE n.target_user_id = $1 AND @nrange AND @where
		 ORDER BY n.seq @dir LIMIT $5)
		UNION
		(SELECT n.seq FROM notify.notifications n
		 WHERE n.target_user_id IS NULL AND n.target_roles IS NULL AND @nrange AND @where
		 ORDER BY n.seq @dir LIMIT $5)
		UNION
		(SELECT x.seq FROM (SELECT DISTINCT unnest($2::text[]) AS role) r
		 CROSS JOIN LATERAL (
			SELECT n.seq FROM notify.notification_roles nr JOIN notify.notifications n ON n.seq = nr.seq
			WHERE nr.role = r.role AND @rrange AND ` + namesRole + ` AND @where
			ORDER BY nr.seq @dir LIMIT $5) x)
	) audience ORDER BY seq @dir LIMIT $5`)
}

// Each range is notify.visible_to taken apart: the index gives the
// targeting (the user's own rows, the broadcasts, the rows indexed under
// one of the user's roles), and what is left is checked per row. The
// checks are written as "(CASE WHEN ok THEN 1 END) IS NOT NULL", which means
// "ok" but which the planner estimates as true for nearly every row: as
// plain predicates it guesses they keep almost none, and then prefers to
// read a role's whole range and sort it over walking the index in order and
// stopping at the limit.
const (
	// deliverable is "notify.undeliverable_reason(n) IS NULL".
	deliverable = `(CASE WHEN notify.undeliverable_reason(n) IS NULL THEN 1 END) IS NOT NULL`
	// namesRole re-checks a row found through notify.notification_roles
	// against its targets (they cannot change once it is published, but a
	// row changed with triggers off must not reach the wrong people).
	namesRole = `(CASE WHEN n.target_roles && $2::text[] THEN 1 END) IS NOT NULL`
)

// Resuming is what streams resuming from a node's memory need from the
// database: their users' mutes, to filter what they are sent, and where
// retention truncated the stream, since a resume point before it must be
// told so (and answered from the table).
type Resuming struct {
	// Muted holds the muted modules of the users who muted any.
	Muted map[string][]string
	// TruncatedBefore is the stream head's truncated_before.
	TruncatedBefore int64
	// Holes are the stream's holes (Head.Holes): a resume point in one is
	// answered from the table, which says it is lost, not from memory.
	Holes Holes
}

// ResumingOf reads Resuming for many users in one statement: in a
// reconnect storm thousands of streams queue for it at once (package
// stream reads it in batches).
func (s *Inbox) ResumingOf(ctx context.Context, userIDs []string) (Resuming, error) {
	rows, err := s.pool.Query(ctx, `SELECT h.truncated_before, `+holesColumn+`, p.user_id, p.muted_modules
		FROM notify.stream_head h
		LEFT JOIN notify.preferences p ON p.user_id = ANY($1::text[]) AND cardinality(p.muted_modules) > 0`, userIDs)
	if err != nil {
		return Resuming{}, fmt.Errorf("read the resume state of %d users: %w", len(userIDs), interpretError(err))
	}
	defer rows.Close()
	r := Resuming{Muted: map[string][]string{}}
	for rows.Next() {
		var user *string
		var mods []string
		var holes []int64
		if err := rows.Scan(&r.TruncatedBefore, &holes, &user, &mods); err != nil {
			return Resuming{}, fmt.Errorf("read the resume state of %d users: %w", len(userIDs), err)
		}
		r.Holes = holesOf(holes)
		if user != nil {
			r.Muted[*user] = mods
		}
	}
	if err := rows.Err(); err != nil {
		return Resuming{}, fmt.Errorf("read the resume state of %d users: %w", len(userIDs), interpretError(err))
	}
	return r, nil
}
