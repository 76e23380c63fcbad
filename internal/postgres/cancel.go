package postgres

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// DefaultCancelGrace is PoolConfig.CancelGrace's default: far above what
// notifyd's statements take (the slowest on a hot path, a stream's opening
// at 10 million rows, a few milliseconds), far below a shutdown's patience.
const DefaultCancelGrace = 2 * time.Second

// Why a statement whose context is cancelled may still finish: pgx's
// default, when a context ends mid-statement, breaks the connection's I/O at
// once; pgx then closes the connection and sends PostgreSQL a cancel request
// for it, over a connection of its own. Most of notifyd's cancelled contexts
// are a client that left (a stream closed while it opened, a request whose
// client hung up) or a shutdown, above statements that take milliseconds.
// Breaking them gains nothing and costs:
//   - a connection: the pool opens another (a backend's start, TLS) in the
//     middle of the reconnect storm whose abandoned openings caused it;
//   - through PgBouncer 1.18 to 1.20 (1.18 is Debian 12's), possibly the
//     pooler itself, which can exit on a cancel request that meets a server
//     connection in a particular state (pgbouncer issue 822, fixed in 1.21).
//
// So a cancelled context lets its statement run on for up to the grace, and
// the connection goes back to the pool whole; only a statement still running
// then has its I/O broken (and the cancel request sent). A context whose
// deadline passed is the caller's bound on purpose (the sign-in pool's
// statement timeout through a pooler, a stream's opening timeout): it breaks
// the statement at once, as before, and a cancelled context never runs past
// its own deadline.
type patientCancel struct {
	conn  net.Conn
	grace time.Duration
}

func (h *patientCancel) HandleCancel(ctx context.Context) {
	delay := h.grace
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		delay = 0
	} else if deadline, ok := ctx.Deadline(); ok {
		delay = min(delay, time.Until(deadline))
	}
	_ = h.conn.SetDeadline(time.Now().Add(delay))
}

func (h *patientCancel) HandleUnwatchAfterCancel() {
	_ = h.conn.SetDeadline(time.Time{})
}

// patientCancels builds a connection's patientCancel (pgconn's
// Config.BuildContextWatcherHandler).
func patientCancels(grace time.Duration) func(*pgconn.PgConn) ctxwatch.Handler {
	return func(c *pgconn.PgConn) ctxwatch.Handler {
		return &patientCancel{conn: c.Conn(), grace: grace}
	}
}
