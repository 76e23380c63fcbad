package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/postgres"
)

// openReplica opens DATABASE_REPLICA_URL for the reads a replica may
// answer, fenced by primary (DATABASE_URL's pool), telling observe of each
// read (notifyd_replica_reads_total). It returns nil without a replica.
// The replica need not be up now.
func openReplica(ctx context.Context, cfg Config, primary *pgxpool.Pool, observe func(read, source, reason string)) (*postgres.Replica, error) {
	if cfg.DatabaseReplicaURL == "" {
		return nil, nil
	}
	// A pooler in front of the replica needs what one in front of the
	// primary does (unnamed statements). Not reachable now: taken to be
	// the server itself, as replicas usually are reached.
	pooled, err := postgres.BehindPooler(ctx, cfg.DatabaseReplicaURL)
	if err != nil {
		cfg.Logger.WarnContext(ctx, "the replica cannot be reached now; replays and history pages read from the primary until it can",
			"err", err)
	}
	r, err := postgres.OpenReplica(ctx, cfg.DatabaseReplicaURL, primary,
		postgres.PoolConfig{MaxConns: cfg.PoolSize, GenericPlans: true, Pooled: pooled, ApplicationName: "notifyd-replica"},
		postgres.ReplicaConfig{Wait: cfg.ReplicaWait, Logger: cfg.Logger, Observe: observe})
	if err != nil {
		return nil, fmt.Errorf("DATABASE_REPLICA_URL: %w", err)
	}
	return r, nil
}

// replicaNote says in /readyz how the replica is used. It never makes the
// node unready (the primary answers its reads), and says nothing of the
// error behind a state: /readyz is public, the log has it.
func replicaNote(r *postgres.Replica) string {
	st := r.Status()
	since := st.Since.UTC().Format(time.RFC3339)
	switch st.State {
	case postgres.ReplicaUp:
		return "in use: replays and history pages read from it once it has replayed far enough"
	case postgres.ReplicaUntrusted:
		return "not used since " + since + ": not a standby of the primary's database (promoted, or another cluster or database); replays and history pages read from the primary"
	}
	return "not used since " + since + ": cannot be reached; replays and history pages read from the primary"
}
