package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// A read answered by a streaming replica must return what the primary
// would have returned when the read was asked for: a replay every
// notification up to where the stream's live delivery takes over, a
// history page every notification and read mark committed before the
// request. The replica shows a prefix of the primary's commits, in WAL
// order (seqs are numbered in commit order, so a prefix of the stream too);
// which prefix is told by how far it has replayed. So each such read
// carries a fence, the primary's WAL position read after the read began,
// and the replica answers it only once it has replayed at least that far.
//
// The position is pg_current_wal_insert_lsn(), not pg_current_wal_lsn():
// a transaction that committed with synchronous_commit off is visible
// before its commit record is written out, but never before it is
// inserted, so the insert position is past every commit the primary's
// statement could see. It may also be past WAL not written out yet (a
// transaction still open, a page pruned by a read): the replica reaches it
// once that is flushed, which the next commit does, and a read waiting for
// a replica that has replayed all it was sent asks the primary for one
// (Replica.nudge).
//
// The fence also names the newest history the primary numbers seqs on
// (notify.histories, history.go): a replica that has replayed far enough
// but shows another newest history follows a history the primary does not
// (the old primary's, after a failover to another replica), and answers
// nothing.

// Fence is the point a replica must have replayed past to answer a read as
// the primary would have. The zero Fence is unknown: such reads go to the
// primary.
type Fence struct {
	// LSN is the primary's WAL insert position, in bytes.
	LSN int64
	// History is the id of the primary's newest notify.histories row (0
	// when none).
	History int64
}

// IsZero reports whether the fence is unknown.
func (f Fence) IsZero() bool { return f.LSN == 0 }

// fenceColumns reads a Fence, for statements that run on the primary
// anyway (the stream head's, the opening's): no round trip of its own. On
// a standby (DATABASE_URL pointing at one during a failover) it reads 0,
// an unknown fence, rather than failing the statement.
const fenceColumns = `CASE WHEN pg_is_in_recovery() THEN 0 ELSE (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint END,
	COALESCE((SELECT max(hi.id) FROM notify.histories hi), 0)`

// fenceBox keeps the newest of the fences noted (ReadFence): the highest
// position on the newest history.
type fenceBox struct {
	mu sync.Mutex
	f  Fence
}

func (b *fenceBox) note(f Fence) {
	if f.IsZero() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if f.History > b.f.History || (f.History == b.f.History && f.LSN > b.f.LSN) {
		b.f = f
	}
}

func (b *fenceBox) get() Fence {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.f
}

// fenceGroup shares the fence reads of concurrent requests (history
// pages): a request waits for a read that starts after it arrived, and
// every request that arrives while one read runs shares the next. Under
// load the primary sees one such statement per round trip, not one per
// request; unloaded, a request waits for its own.
type fenceGroup struct {
	mu      sync.Mutex
	running bool
	next    *fenceCall // gathering requests; starts when the running one ends
}

type fenceCall struct {
	done    chan struct{}
	fence   Fence
	err     error
	callers int // guarded by fenceGroup.mu
}

// get returns a fence read after the call began.
func (g *fenceGroup) get(ctx context.Context, read func(context.Context) (Fence, error)) (Fence, error) {
	g.mu.Lock()
	c := g.next
	if c == nil {
		c = &fenceCall{done: make(chan struct{})}
		g.next = c
	}
	c.callers++
	if !g.running {
		g.running, g.next = true, nil
		go g.run(c, read)
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.fence, c.err
	case <-ctx.Done():
		return Fence{}, ctx.Err()
	}
}

// run reads c's fence, then the one of the requests that gathered
// meanwhile, until none are waiting. The read follows no request's
// context: it is shared, and bounded on its own.
func (g *fenceGroup) run(c *fenceCall, read func(context.Context) (Fence, error)) {
	for c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.fence, c.err = read(ctx)
		cancel()
		close(c.done)
		g.mu.Lock()
		c, g.next = g.next, nil
		g.running = c != nil
		g.mu.Unlock()
	}
}

// readFence reads the primary's fence on its own.
func readFence(ctx context.Context, q querier) (Fence, error) {
	var f Fence
	if err := q.QueryRow(ctx, `SELECT `+fenceColumns).Scan(&f.LSN, &f.History); err != nil {
		return Fence{}, fmt.Errorf("read the primary's WAL position: %w", interpretError(err))
	}
	return f, nil
}
