package stream

import (
	"context"
	"errors"

	"github.com/notifyd/notifyd/internal/hub"
)

// Why turns: when a node dies its clients all reconnect to the others at
// once, and each opening stream reads the database (the inbox state, its
// replay). Config.MaxOpening bounds how many do so at once, so the pool the
// worker and the feed share is never all taken by openings.
//
// A turn covers database reads only. Writing to the client happens between
// turns: a client reading its replay slowly holds no turn, so it cannot
// keep other streams from opening. What it can hold, its own opening, is
// bounded by Config.OpeningTimeout.

// errClosed: the subscriber was closed (logout, shutdown, slow) while its
// stream waited for a turn; the stream goes on to say why.
var errClosed = errors.New("stream closed while opening")

// takeTurn waits for a turn at the database. It returns ctx's error when ctx
// ends first and errClosed when the subscriber is closed first (or was
// already). Every successful takeTurn is followed by one endTurn.
func (s *Server) takeTurn(ctx context.Context, sub *hub.Subscriber) error {
	select { // a closed subscriber takes no turn even when one is free
	case <-sub.Done():
		return errClosed
	default:
	}
	select {
	case s.opening <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-sub.Done():
		return errClosed
	}
}

// tryTurn takes a turn if one is free now; every true is followed by one
// endTurn.
func (s *Server) tryTurn() bool {
	select {
	case s.opening <- struct{}{}:
		return true
	default:
		return false
	}
}

// endTurn gives the turn back.
func (s *Server) endTurn() { <-s.opening }
