package postgres

import (
	"context"
	"fmt"
)

// Hole is a range of seqs never numbered on this database: a new history
// (a restored copy, a promoted replica) started at First, while the one
// before ended here at After. Clients may have seen seqs in between on the
// lost history; a client resuming from one of them is told it lost
// notifications, then gets everything after (which starts at First).
type Hole struct {
	After int64 // the last seq of the history before, on this database
	First int64 // the first seq of the new history
}

// Contains reports whether seq lies strictly inside the hole.
func (h Hole) Contains(seq int64) bool { return seq > h.After && seq < h.First }

// Holes are a database's holes, oldest first; usually none.
type Holes []Hole

// Lost returns the hole a resume point lies in, if any.
func (hs Holes) Lost(seq int64) (Hole, bool) {
	for _, h := range hs {
		if h.Contains(seq) {
			return h, true
		}
	}
	return Hole{}, false
}

// holesColumn reads the holes as one bigint[] of (after, first) pairs,
// oldest first, for the statements that read the stream head (Head,
// Opening, ResumingOf): a resume needs them with the head. The table holds
// a row per history, a handful in a database's life.
const holesColumn = `(SELECT COALESCE(array_agg(p.v ORDER BY hi.id, p.o), '{}')
	FROM notify.histories hi, LATERAL unnest(ARRAY[hi.resumed_after, hi.first_seq]) WITH ORDINALITY p(v, o)
	WHERE hi.first_seq > hi.resumed_after + 1)`

// holesOf turns holesColumn's pairs into Holes.
func holesOf(pairs []int64) Holes {
	if len(pairs) < 2 {
		return nil
	}
	hs := make(Holes, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		hs = append(hs, Hole{After: pairs[i], First: pairs[i+1]})
	}
	return hs
}

// ResumePoint is what a client resuming after a seq must be told.
type ResumePoint string

// The states of a resume point (notify.resume_point_state).
const (
	// ResumeOK: everything after it is here.
	ResumeOK ResumePoint = "ok"
	// ResumeLost: it was numbered on a history this database lost (a
	// restore, a failover); the client saw notifications that are not
	// here and may have missed others.
	ResumeLost ResumePoint = "lost"
	// ResumeAhead: above the stream head, and in no hole.
	ResumeAhead ResumePoint = "ahead"
)

// ResumePointState asks notify.resume_point_state what a client resuming
// after seq must be told.
func (s *Notifications) ResumePointState(ctx context.Context, seq int64) (ResumePoint, error) {
	var st string
	if err := s.pool.QueryRow(ctx, `SELECT notify.resume_point_state($1)`, seq).Scan(&st); err != nil {
		return "", fmt.Errorf("resume point state of %d: %w", seq, interpretError(err))
	}
	return ResumePoint(st), nil
}

// Holes reads the database's holes.
func (s *Notifications) Holes(ctx context.Context) (Holes, error) {
	var pairs []int64
	if err := s.pool.QueryRow(ctx, `SELECT `+holesColumn).Scan(&pairs); err != nil {
		return nil, fmt.Errorf("read history holes: %w", interpretError(err))
	}
	return holesOf(pairs), nil
}
