package app

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/feed"
	"github.com/notifyd/notifyd/internal/httpapi"
	"github.com/notifyd/notifyd/internal/listener"
	"github.com/notifyd/notifyd/internal/postgres"
)

// Readiness reasons. /readyz is public (load balancers and probes call it
// without credentials), so it says which component is not ready in a few
// stable words and never the underlying error: a driver's error names the
// database user, host and database. The error goes to the server log.
const (
	reasonUnreachable  = "unreachable"
	reasonSchemaUnread = "cannot read the schema version"
	reasonReconnecting = "reconnecting"
	reasonFeedStarting = "has not read the stream head yet"
	reasonDeafPooled   = "LISTEN is on a pooled connection (PgBouncer in transaction mode?) and hears nothing: set DATABASE_DIRECT_URL to the database itself"
	reasonDeaf         = "LISTEN hears no notifications: delivery waits for the polls"
	notePooledListener = "LISTEN goes through a connection pooler; it hears notifications (session pooling), but DATABASE_DIRECT_URL should name the database itself"
)

// readinessDeps is what readiness looks at.
type readinessDeps struct {
	pool   *pgxpool.Pool // the direct connection's (queue) pool
	pooler *pgxpool.Pool // DATABASE_URL's pool when it is not the direct one; nil otherwise
	mig    *postgres.Migrator
	queue  *postgres.Queue
	lis    *listener.Listener
	fd     *feed.Feed
	// replica is DATABASE_REPLICA_URL's, noted (never a problem: the
	// primary answers its reads); nil without one.
	replica *postgres.Replica
}

// readiness checks the database, the schema version, the listener and the
// feed, and logs each component's change of state (with the error behind
// it) once, not on every probe.
//
// It also notes, without failing, a transaction snapshot held for longer
// than snapshotWarn: while it is open vacuum removes no dead rows, and the
// queue's and the stream head's churn piles up behind it.
//
// A listener that is connected but deaf (its test notification never came
// back, listener.Status) makes the node unready like a disconnected one:
// live delivery has stopped either way. With DATABASE_DIRECT_URL set, the
// pooler behind DATABASE_URL is checked too ("pooler").
func readiness(d readinessDeps, snapshotWarn time.Duration, log *slog.Logger) func(context.Context) httpapi.Readiness {
	rl := &readyLog{log: log, last: map[string]string{}}
	return func(ctx context.Context) httpapi.Readiness {
		problems := map[string]string{}
		errs := map[string]error{}
		notes := map[string]string{}
		checkCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := d.pool.Ping(checkCtx); err != nil {
			problems["database"], errs["database"] = reasonUnreachable, err
		} else if reason, err := schemaProblem(checkCtx, d.mig); reason != "" {
			problems["migrations"], errs["migrations"] = reason, err
		}
		if d.pooler != nil {
			if err := d.pooler.Ping(checkCtx); err != nil {
				problems["pooler"], errs["pooler"] = reasonUnreachable, err
			}
		}
		switch st := d.lis.Status(); {
		case !st.Connected:
			problems["listener"] = reasonReconnecting
		case st.Deaf && st.Pooled:
			problems["listener"] = reasonDeafPooled
		case st.Deaf:
			problems["listener"] = reasonDeaf
		case st.Pooled:
			notes["listener"] = notePooledListener
		}
		if !d.fd.Ready() {
			problems["feed"] = reasonFeedStarting
		}
		rl.report(ctx, problems, errs)
		if _, down := problems["database"]; !down {
			if snap, err := d.queue.OldestSnapshot(checkCtx); err == nil && snap.Age >= snapshotWarn {
				notes["snapshot"] = fmt.Sprintf("a transaction (pid %d) has held a snapshot for %s: "+
					"vacuum cannot remove dead rows until it ends; run long reports on a replica", snap.PID, snap.Age.Round(time.Second))
				rl.noteSnapshot(ctx, snap)
			}
		}
		if d.replica != nil {
			notes["replica"] = replicaNote(d.replica)
		}
		if len(notes) == 0 {
			notes = nil
		}
		return httpapi.Readiness{Problems: problems, Notes: notes}
	}
}

// schemaProblem says how the database's schema differs from this binary's
// migrations ("version 5, want 6"), or "" when it is current.
func schemaProblem(ctx context.Context, mig *postgres.Migrator) (string, error) {
	states, err := mig.Status(ctx)
	if err != nil {
		return reasonSchemaUnread, err
	}
	var applied, want int64
	pending := false
	for _, s := range states {
		want = max(want, s.Version)
		if s.Applied {
			applied = max(applied, s.Version)
		} else {
			pending = true
		}
	}
	switch {
	case !pending:
		return "", nil
	case applied >= want: // a gap: an older migration was never applied
		return fmt.Sprintf("version %d, missing older migrations: run `notifyd migrate up`", applied), nil
	}
	return fmt.Sprintf("version %d, want %d: run `notifyd migrate up`", applied, want), nil
}

// readyLog remembers each component's last reason so that a probe every
// few seconds logs a problem when it starts or changes, and its end, and
// nothing in between.
type readyLog struct {
	log          *slog.Logger
	mu           sync.Mutex
	last         map[string]string // component → reason; absent when ready
	lastSnapshot int               // pid of the old snapshot last logged
}

// noteSnapshot logs an old snapshot once per holding session, with the
// application name, which the public /readyz leaves out.
func (r *readyLog) noteSnapshot(ctx context.Context, s postgres.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.PID == r.lastSnapshot {
		return
	}
	r.lastSnapshot = s.PID
	r.log.WarnContext(ctx, "a transaction snapshot is holding back vacuum", "pid", s.PID, "application_name", s.Application,
		"held_for", s.Age.Round(time.Second))
}

func (r *readyLog) report(ctx context.Context, problems map[string]string, errs map[string]error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	components := map[string]bool{}
	for c := range problems {
		components[c] = true
	}
	for c := range r.last {
		components[c] = true
	}
	for _, c := range slices.Sorted(maps.Keys(components)) {
		reason, was := problems[c], r.last[c]
		switch {
		case reason == was:
			continue
		case reason == "":
			r.log.InfoContext(ctx, "ready again", "component", c)
			delete(r.last, c)
			continue
		case errs[c] != nil:
			r.log.WarnContext(ctx, "not ready", "component", c, "reason", reason, "err", errs[c])
		default:
			r.log.WarnContext(ctx, "not ready", "component", c, "reason", reason)
		}
		r.last[c] = reason
	}
}
