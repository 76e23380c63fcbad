package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A database can go back in time under notifyd: a dump restored elsewhere
// or over it, an asynchronous replica promoted after its primary died with
// commits it never received, a point-in-time recovery. Its head is then
// below seqs clients have seen, and new notifications would reuse them
// (see notify.histories). Every connection that hands out seqs first runs
// notify.enter_history(), which notices the change (another cluster,
// database or timeline) and moves the seq sequence far past anything a
// client may have seen; the seqs skipped form a hole that resumes are told
// is lost (Holes).

// Entered is what notify.enter_history() did on a connection.
type Entered struct {
	// Entered is "same" (the history recorded last), "first" (nothing was
	// recorded: this one is), or "new" (a restored copy, a promoted replica
	// or a point-in-time recovery: the sequence jumped).
	Entered string
	// Reason is what differed from the history recorded before: "cluster",
	// "database", "restored", "timeline", "operator"; "first" or "" for
	// the others.
	Reason string
	// ResumedAfter is the stream head when the history was entered: where
	// the one before ends on this database.
	ResumedAfter int64
	// FirstSeq is the first seq the history hands out.
	FirstSeq int64
}

// IsNew reports whether the connection entered a new history: seqs above
// ResumedAfter and below FirstSeq are lost.
func (e Entered) IsNew() bool { return e.Entered == "new" }

// ErrNotMigrated says the database has no notify.enter_history() yet: its
// schema is absent or not yet migrated, so nothing was
// numbered on a recorded history and nothing can be compared.
var ErrNotMigrated = errors.New("the database has no notify.enter_history() yet (migrations pending)")

// EnterHistory runs notify.enter_history() on conn. Its error names the
// GRANT needed when the role may not read the cluster's identity.
func EnterHistory(ctx context.Context, conn *pgx.Conn) (Entered, error) {
	var e Entered
	var reason *string
	// The simple protocol: a hook on a new connection should leave no
	// prepared statement behind (a pooled server connection outlives it).
	err := conn.QueryRow(ctx, `SELECT entered, reason, resumed_after, first_seq FROM notify.enter_history()`,
		pgx.QueryExecModeSimpleProtocol).Scan(&e.Entered, &reason, &e.ResumedAfter, &e.FirstSeq)
	if err != nil {
		return Entered{}, historyError(err)
	}
	if reason != nil {
		e.Reason = *reason
	}
	return e, nil
}

// historyError explains why the history could not be checked.
func historyError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42883", "3F000", "42P01": // undefined function, schema, table
			return fmt.Errorf("enter history: %w", ErrNotMigrated)
		case "42501": // insufficient privilege
			return fmt.Errorf("enter history: %s; %s (see README, Restore and failover)", pgErr.Message, pgErr.Hint)
		}
	}
	return fmt.Errorf("enter history: %w", interpretError(err))
}

// HistoryHook returns a pgxpool AfterConnect hook for the pools whose
// connections hand out seqs (the queue workers'): each new connection
// enters the history before the pool hands it out, so a node that
// survives a failover and reconnects to the promoted replica publishes
// nothing there before the sequence moved. A database not migrated yet is
// let through (the worker checks again once it starts, after the
// migrations); any other failure fails the connection, since publishing on
// it might reuse seqs. A new history is logged at WARN.
func HistoryHook(logger *slog.Logger) func(context.Context, *pgx.Conn) error {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return func(ctx context.Context, conn *pgx.Conn) error {
		e, err := EnterHistory(ctx, conn)
		if errors.Is(err, ErrNotMigrated) {
			return nil
		}
		if err != nil {
			return err
		}
		LogEntered(ctx, logger, e)
		return nil
	}
}

// LogEntered tells the operator about a new history: seqs jumped, and the
// clients whose resume points fall in the hole are told they lost some.
func LogEntered(ctx context.Context, logger *slog.Logger, e Entered) {
	switch e.Entered {
	case "new":
		logger.WarnContext(ctx, fmt.Sprintf("this database is a restored copy or a promoted replica (%s): "+
			"seqs continue from %d; clients that resume from a seq in (%d, %d) are told they lost notifications",
			historyChange(e.Reason), e.FirstSeq, e.ResumedAfter, e.FirstSeq),
			"reason", e.Reason, "resumed_after", e.ResumedAfter, "first_seq", e.FirstSeq)
	case "first":
		logger.InfoContext(ctx, "recorded the database's history: a restored copy or a promoted replica will be noticed",
			"first_seq", e.FirstSeq)
	}
}

// historyChange says in words what a new history's reason means.
func historyChange(reason string) string {
	switch reason {
	case "cluster":
		return "another cluster than the one seqs were numbered on"
	case "database":
		return "another database than the one seqs were numbered on"
	case "restored":
		return "a dump was restored over the database"
	case "timeline":
		return "the timeline changed: a promoted replica or a point-in-time recovery"
	case "operator":
		return "an operator said so"
	}
	return reason
}

// EnterHistory runs notify.enter_history() on one of the queue's
// connections, as a worker does when it starts (HistoryHook covers the
// connections made later).
func (q *Queue) EnterHistory(ctx context.Context) (Entered, error) {
	conn, err := q.pool.Acquire(ctx)
	if err != nil {
		return Entered{}, fmt.Errorf("enter history: %w", interpretError(err))
	}
	defer conn.Release()
	return EnterHistory(ctx, conn.Conn())
}
