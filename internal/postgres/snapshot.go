package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Snapshot is the oldest transaction snapshot open in notifyd's database.
// While it is open, vacuum cannot remove the rows that died after it began:
// every batch notifyd publishes leaves dead row versions that then pile up
// (a forgotten psql session, a long report, pg_dump).
type Snapshot struct {
	// Age is how long its transaction has been open (0 when none is).
	Age time.Duration
	// PID and Application name the session holding it (its
	// application_name), for the admin's log; Application may be empty.
	PID         int
	Application string
}

// OldestSnapshot finds the session of this database whose snapshot is the
// oldest (other than this one). Snapshots taken while no transaction wrote
// share their xmin: of those, the one whose transaction began first is
// the one holding vacuum back longest (a read-only report's, not the query
// that started a moment ago). Sessions of other roles are visible only
// with pg_read_all_stats (or as a superuser); without it their xmin reads
// as NULL and they are not seen.
func (q *Queue) OldestSnapshot(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	var age float64
	err := q.pool.QueryRow(ctx, `SELECT COALESCE(extract(epoch FROM clock_timestamp() - xact_start), 0), pid,
			COALESCE(application_name, '')
		FROM pg_stat_activity
		WHERE datname = current_database() AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
		ORDER BY age(backend_xmin) DESC, xact_start LIMIT 1`).Scan(&age, &s.PID, &s.Application)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, nil
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("find the oldest snapshot: %w", interpretError(err))
	}
	s.Age = time.Duration(age * float64(time.Second))
	return s, nil
}
