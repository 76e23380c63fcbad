package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/notify"
)

// Querier is what LoadFeed reads with (a pool or a connection).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Published is a published notification as the check needs it, with
// when it was created (the producer's transaction) and published (the
// worker's), which latency figures split at.
type Published struct {
	Seq                    int64
	ID                     string
	Target                 notify.Target
	CreatedAt, PublishedAt time.Time
}

// Feed is every notification published after a point, from the database:
// the truth each reader's deliveries are checked against.
type Feed struct {
	After, Last int64
	bySeq       map[int64]Published
	everyone    []int64
	byUser      map[string][]int64
	byRole      map[string][]int64
}

// LoadFeed reads every notification published with seq > after.
func LoadFeed(ctx context.Context, q Querier, after int64) (*Feed, error) {
	rows, err := q.Query(ctx, `SELECT seq, id::text, COALESCE(target_user_id, ''), COALESCE(target_roles, '{}'), created_at, published_at
		FROM notify.notifications WHERE seq > $1 ORDER BY seq`, after)
	if err != nil {
		return nil, fmt.Errorf("load published notifications: %w", err)
	}
	defer rows.Close()
	f := &Feed{After: after, Last: after, bySeq: map[int64]Published{}, byUser: map[string][]int64{}, byRole: map[string][]int64{}}
	for rows.Next() {
		var p Published
		if err := rows.Scan(&p.Seq, &p.ID, &p.Target.UserID, &p.Target.Roles, &p.CreatedAt, &p.PublishedAt); err != nil {
			return nil, fmt.Errorf("load published notifications: %w", err)
		}
		f.add(p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load published notifications: %w", err)
	}
	return f, nil
}

func (f *Feed) add(p Published) {
	if len(p.Target.Roles) == 0 {
		p.Target.Roles = nil
	}
	f.bySeq[p.Seq] = p
	f.Last = max(f.Last, p.Seq)
	if p.Target.Everyone() {
		f.everyone = append(f.everyone, p.Seq)
		return
	}
	if p.Target.UserID != "" {
		f.byUser[p.Target.UserID] = append(f.byUser[p.Target.UserID], p.Seq)
	}
	for _, r := range p.Target.Roles {
		f.byRole[r] = append(f.byRole[r], p.Seq)
	}
}

// Len is the number of notifications in the feed.
func (f *Feed) Len() int { return len(f.bySeq) }

// Get returns the notification with seq.
func (f *Feed) Get(seq int64) (Published, bool) {
	p, ok := f.bySeq[seq]
	return p, ok
}

// Expected lists, in order, the seqs a stream of id resumed from after
// must deliver: every notification in the feed with seq > after whose
// target matches id (notify.Target.Matches, the one definition of
// targeting).
func (f *Feed) Expected(id notify.Identity, after int64) []int64 {
	var out []int64
	add := func(seqs []int64) {
		i, _ := slices.BinarySearch(seqs, after+1)
		out = append(out, seqs[i:]...)
	}
	add(f.everyone)
	add(f.byUser[id.UserID])
	for _, r := range id.Roles {
		add(f.byRole[r])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Check is the exactly-once verdict on one stream (or, summed, on many).
type Check struct {
	Streams  int `json:"streams"`
	Expected int `json:"expected"`
	Received int `json:"received"`
	// Missing: expected and never received.
	Missing int `json:"missing"`
	// Duplicated: received more than once (each extra copy counts).
	Duplicated int `json:"duplicated"`
	// OutOfOrder: received after a higher seq.
	OutOfOrder int `json:"out_of_order"`
	// Foreign: received but not targeted to the stream's identity (or not
	// a published notification at all).
	Foreign int `json:"foreign"`
	// Early: targeted to the identity but at or before the stream's start
	// point, which the stream should not have replayed.
	Early int `json:"early"`
	// Examples describe the first few problems.
	Examples []string `json:"examples,omitempty"`
}

// OK reports whether every notification arrived exactly once, in order,
// and nothing else arrived.
func (c Check) OK() bool {
	return c.Missing == 0 && c.Duplicated == 0 && c.OutOfOrder == 0 && c.Foreign == 0 && c.Early == 0
}

// Add sums o into c, keeping a few examples.
func (c *Check) Add(o Check) {
	c.Streams += o.Streams
	c.Expected += o.Expected
	c.Received += o.Received
	c.Missing += o.Missing
	c.Duplicated += o.Duplicated
	c.OutOfOrder += o.OutOfOrder
	c.Foreign += o.Foreign
	c.Early += o.Early
	for _, e := range o.Examples {
		if len(c.Examples) < 10 {
			c.Examples = append(c.Examples, e)
		}
	}
}

func (c Check) String() string {
	return fmt.Sprintf("%d streams, %d expected, %d received: %d missing, %d duplicated, %d out of order, %d foreign, %d early",
		c.Streams, c.Expected, c.Received, c.Missing, c.Duplicated, c.OutOfOrder, c.Foreign, c.Early)
}

// Check compares what a stream of id, started at after, received (in the
// order it arrived) with what it had to receive. name labels examples.
func (f *Feed) Check(name string, id notify.Identity, after int64, received []int64) Check {
	c := Check{Streams: 1, Received: len(received)}
	example := func(format string, args ...any) {
		if len(c.Examples) < 3 {
			c.Examples = append(c.Examples, name+": "+fmt.Sprintf(format, args...))
		}
	}
	expected := f.Expected(id, after)
	c.Expected = len(expected)
	seen := make(map[int64]int, len(received))
	for i, seq := range received {
		seen[seq]++
		if seen[seq] > 1 {
			c.Duplicated++
			example("seq %d received again (at position %d)", seq, i)
			continue
		}
		if i > 0 && seq < received[i-1] {
			c.OutOfOrder++
			example("seq %d received after seq %d", seq, received[i-1])
		}
		p, ok := f.bySeq[seq]
		switch {
		case !ok && seq <= f.After:
			// Published before the feed was loaded from: only a match
			// replayed too far back can be here.
			c.Early++
			example("seq %d is at or before the start point %d", seq, after)
		case !ok:
			c.Foreign++
			example("seq %d was never published", seq)
		case !p.Target.Matches(id):
			c.Foreign++
			example("seq %d targets %+v, not user %s with roles %v", seq, p.Target, id.UserID, id.Roles)
		case seq <= after:
			c.Early++
			example("seq %d is at or before the start point %d", seq, after)
		}
	}
	for _, seq := range expected {
		if seen[seq] == 0 {
			c.Missing++
			example("seq %d (%s) never received", seq, f.bySeq[seq].ID)
		}
	}
	return c
}
