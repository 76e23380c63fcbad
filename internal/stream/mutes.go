package stream

import (
	"context"
	"fmt"
	"sync"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/postgres"
)

// Why mutes are read in batches: a stream resuming from the hub's window
// needs one thing from the database before it can be sent anything, its
// user's muted modules. When a node dies, thousands of such streams arrive
// at once; one query each, a turn each, is what made them queue (the turn
// costs a round trip and a few scheduler waits on a loaded machine, the
// query itself microseconds). Instead the first stream to ask opens a
// batch and waits for a turn; those that ask meanwhile join it; the batch
// is read with one statement when the turn comes. Unloaded, a batch is one
// user; in a storm, hundreds.

// maxMuteBatch bounds the users read by one statement.
const maxMuteBatch = 1000

// muteBatch is one statement's worth of users.
type muteBatch struct {
	users []string
	done  chan struct{}
	state postgres.Resuming
	err   error
}

// muteLoader gathers the users of streams waiting for their mutes.
type muteLoader struct {
	mu   sync.Mutex
	next *muteBatch // gathering users while its leader waits for a turn
}

// loadMutes returns sub's user's muted modules, the stream's truncation
// point and its holes (a restored copy's or promoted replica's), read in a batch with those of the other streams opening now. An
// error means the stream should open the ordinary way (its own turn and
// statement).
func (s *Server) loadMutes(ctx context.Context, sub *hub.Subscriber) (muted []string, truncatedBefore int64, holes postgres.Holes, err error) {
	user := sub.Identity().UserID
	l := &s.mutes
	l.mu.Lock()
	b, leader := l.next, false
	if b == nil || len(b.users) >= maxMuteBatch {
		b, leader = &muteBatch{done: make(chan struct{})}, true
		l.next = b
	}
	b.users = append(b.users, user)
	l.mu.Unlock()
	if leader {
		s.readMutes(ctx, sub, b)
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, 0, nil, ctx.Err()
	}
	if b.err != nil {
		return nil, 0, nil, b.err
	}
	return b.state.Muted[user], b.state.TruncatedBefore, b.state.Holes, nil
}

// readMutes waits for a turn, closes b to newcomers and reads it. The
// statement does not follow the leader's client: the batch is everyone's.
func (s *Server) readMutes(ctx context.Context, sub *hub.Subscriber, b *muteBatch) {
	defer close(b.done)
	err := s.takeTurn(ctx, sub)
	s.mutes.mu.Lock()
	if s.mutes.next == b {
		s.mutes.next = nil
	}
	s.mutes.mu.Unlock()
	if err != nil {
		b.err = fmt.Errorf("wait for a turn to read mutes: %w", err)
		return
	}
	defer s.endTurn()
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.OpeningTimeout)
	defer cancel()
	b.state, b.err = s.inbox.ResumingOf(qctx, b.users)
}
