package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// A user's audience is three kinds of rows, each an index range in seq
// order: the notifications that name the user (notifications_target_user_idx),
// the broadcasts (notifications_broadcast_idx), and, for each of the user's
// roles, the notifications that name the role (notify.notification_roles,
// written once per role when a notification is published). Reading the
// ranges in step and merging them costs what the user may see, not what the
// table holds: a user who gets 20 notifications among 10 million reads
// about 20 rows.
//
// audienceQuery builds the statement that returns the seqs of up to $5 rows
// the identity ($1 user id, $2 roles) may see (notify.visible_to, taken
// apart below), in the range rangeCond over @seq ($3 and $4 are its
// bounds), that also pass filter (SQL over n), ordered by dir ("ASC" or
// "DESC"). Each range is an ordered subquery that could give up to $5 rows,
// and the ranges are merged (a Merge Append under the outer LIMIT), so each
// is read only as far as the merge needs: the newest $5 of the user's rows
// cost about $5 rows in all, not $5 per range. The GROUP BY removes the
// rows two ranges share (a notification naming the user and a role, or two
// of the user's roles).
//
// The statement has one range per role, so its text depends on how many
// roles the user has: audienceQuery leaves a marked template (roleRanges)
// that an audienceStatement writes out for each number of roles.
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
		UNION ALL
		(SELECT n.seq FROM notify.notifications n
		 WHERE n.target_user_id IS NULL AND n.target_roles IS NULL AND @nrange AND @where
		 ORDER BY n.seq @dir LIMIT $5)` +
		roleRangesOpen + `
		UNION ALL
		(SELECT n.seq FROM notify.notification_roles nr JOIN notify.notifications n ON n.seq = nr.seq
		 WHERE nr.role = ($2::text[])[@role] AND @rrange AND ` + namesRole + ` AND @where
		 ORDER BY nr.seq @dir LIMIT $5)` + roleRangesElse + `
		UNION ALL
		(SELECT x.seq FROM (SELECT DISTINCT unnest($2::text[]) AS role) r
		 CROSS JOIN LATERAL (
			SELECT n.seq FROM notify.notification_roles nr JOIN notify.notifications n ON n.seq = nr.seq
			WHERE nr.role = r.role AND @rrange AND ` + namesRole + ` AND @where
			ORDER BY nr.seq @dir LIMIT $5) x
		 ORDER BY x.seq @dir LIMIT $5)` + roleRangesClose + `
	) audience GROUP BY seq ORDER BY seq @dir LIMIT $5`)
}

// The role ranges of an audienceQuery: between roleRangesOpen and
// roleRangesElse, one role's range (@role is its index in $2), written
// out once per role; between roleRangesElse and roleRangesClose, one range
// over all of them (each role's range read up to $5 and sorted), for users
// with more than maxRoleRanges roles, whose statements would otherwise
// take long to plan.
const (
	roleRangesOpen  = "/*role ranges:*/"
	roleRangesElse  = "/*or, with many roles:*/"
	roleRangesClose = "/*end of role ranges*/"
	maxRoleRanges   = 8
)

// audienceStatement is a statement holding audienceQuery templates,
// written out for every number of roles up to maxRoleRanges (and once for
// more), so that choosing one costs nothing per call.
type audienceStatement struct {
	byRoles [maxRoleRanges + 2]string // [maxRoleRanges+1]: more roles
}

func newAudienceStatement(template string) *audienceStatement {
	a := &audienceStatement{}
	for n := range a.byRoles {
		a.byRoles[n] = expandRoleRanges(template, n)
	}
	return a
}

// For returns the statement for a user with these roles (rolesArg).
func (a *audienceStatement) For(roles []string) string {
	return a.byRoles[min(len(roles), maxRoleRanges+1)]
}

// expandRoleRanges writes out every role-range template in sql for n
// roles: n ranges, or the single range over all roles when n is more than
// maxRoleRanges or none (a statement must name each of its parameters,
// and with no roles $2 is in no other range; that range then reads an
// empty array and nothing else).
func expandRoleRanges(sql string, n int) string {
	var b strings.Builder
	for {
		open := strings.Index(sql, roleRangesOpen)
		if open < 0 {
			b.WriteString(sql)
			return b.String()
		}
		els := open + strings.Index(sql[open:], roleRangesElse)
		end := els + strings.Index(sql[els:], roleRangesClose)
		one, many := sql[open+len(roleRangesOpen):els], sql[els+len(roleRangesElse):end]
		b.WriteString(sql[:open])
		if n == 0 || n > maxRoleRanges { // with no roles, $2 must still be named somewhere
			b.WriteString(many)
		} else {
			for i := 1; i <= n; i++ {
				b.WriteString(strings.ReplaceAll(one, "@role", strconv.Itoa(i)))
			}
		}
		sql = sql[end+len(roleRangesClose):]
	}
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
