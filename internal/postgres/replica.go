package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Why a replica: stream replays and history pages are most of what
// notifyd reads that no write depends on, and a streaming replica can
// answer them once it has replayed far enough (fence.go). Everything else
// stays on the primary: what writes, the feed (it defines what is
// published), the stream openings' unread counts and heads (a fence is read
// with them), and the counts a user's read-state changes announce.
//
// A replica is used only while it looks like one of this primary's
// standbys: the same cluster (system identifier) and database, checked on
// each connection; in recovery and on the primary's newest history,
// checked with every read. A read whose replica has not replayed far
// enough waits up to ReplicaConfig.Wait, then goes to the primary; one
// whose replica is down or fails goes to the primary at once, and the
// replica is left alone (a probe with back-off tells when it is back).

// Which reads a replica may answer (ReplicaConfig.Observe's read).
const (
	ReadReplay  = "replay"
	ReadHistory = "history"
)

// Where a read ran (ReplicaConfig.Observe's source).
const (
	SourceReplica = "replica"
	SourcePrimary = "primary"
)

// Why a read ran where it did (ReplicaConfig.Observe's reason).
const (
	// ReasonCaughtUp: the replica had replayed past the read's fence.
	ReasonCaughtUp = "caught_up"
	// ReasonWaited: it had not, and did within ReplicaConfig.Wait.
	ReasonWaited = "waited"
	// ReasonLagging: it had not within ReplicaConfig.Wait.
	ReasonLagging = "lagging"
	// ReasonDown: it could not be reached, lately or now.
	ReasonDown = "down"
	// ReasonUntrusted: it is not one of the primary's standbys now (another
	// cluster or database, promoted, or on another history).
	ReasonUntrusted = "untrusted"
	// ReasonError: the read failed on the replica (a statement cancelled
	// by a conflict with recovery, say); it was read again on the primary.
	ReasonError = "error"
	// ReasonUnfenced: the primary's WAL position was not known (the stream
	// head came from a standby during a failover).
	ReasonUnfenced = "unfenced"
)

// ErrReplicaUntrusted says a replica connection reached a server that is
// not a standby of notifyd's primary database.
var ErrReplicaUntrusted = errors.New("not a standby of the primary's database")

// ReplicaConfig tunes the use of a replica.
type ReplicaConfig struct {
	// Wait is how long a read waits for the replica to replay past its
	// fence before it reads from the primary instead (NOTIFY_REPLICA_WAIT).
	// A stream's replay waits in its opening turn, so keep it short.
	// Default 100ms.
	Wait time.Duration
	// Timeout bounds a read's attempt on the replica, its connection
	// included, beyond the Wait: a replica that does not answer in this
	// long counts as down and the read goes to the primary. Default 2s.
	Timeout time.Duration
	// ProbeInterval is how often the replica's state is read while it is
	// usable, for Status. Default 1s.
	ProbeInterval time.Duration
	// MaxBackoff is the longest pause between the probes of a replica that
	// is down or not trusted; the pause doubles from 1s. Default 30s.
	MaxBackoff time.Duration
	// Observe, when set, is told of each read a replica may answer: which
	// (ReadReplay, ReadHistory), where it ran (SourceReplica,
	// SourcePrimary) and why (the Reason constants).
	Observe func(read, source, reason string)
	// Logger receives the replica's changes of state. Default: discarded.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field defaulted.
func (c ReplicaConfig) WithDefaults() ReplicaConfig {
	c.Wait = cmp.Or(c.Wait, 100*time.Millisecond)
	c.Timeout = cmp.Or(c.Timeout, 2*time.Second)
	c.ProbeInterval = cmp.Or(c.ProbeInterval, time.Second)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// querier is what a read needs of a pool or of one of its connections.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Replica routes the reads it may answer to a streaming replica or to the
// primary. Its methods are safe for concurrent use.
type Replica struct {
	cfg     ReplicaConfig
	pool    *pgxpool.Pool // the replica
	primary *pgxpool.Pool // fences, and the identity the replica must share
	fences  fenceGroup
	health  health
	// walBlock and walSegment are the primary's WAL page and segment
	// sizes (see reachable).
	walBlock, walSegment int64
	// nudging: a nudge is in flight (see nudge); nudges waits for them.
	nudging atomic.Bool
	nudges  sync.WaitGroup
}

// OpenReplica opens a pool on the replica at url for reads fenced by the
// primary's pool. The replica need not be up: its reads go to the primary
// until it is. The primary must let notifyd's role read its WAL position
// (the fence), which it checks now.
func OpenReplica(ctx context.Context, url string, primary *pgxpool.Pool, pc PoolConfig, cfg ReplicaConfig) (*Replica, error) {
	cfg = cfg.WithDefaults()
	if _, err := readFence(ctx, primary); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	r := &Replica{cfg: cfg, primary: primary}
	err := primary.QueryRow(ctx, `SELECT current_setting('wal_block_size')::bigint, pg_size_bytes(current_setting('wal_segment_size'))`).
		Scan(&r.walBlock, &r.walSegment)
	if err != nil {
		return nil, fmt.Errorf("replica: read the primary's WAL page size: %w", interpretError(err))
	}
	r.health.init(cfg)
	pc.Lazy = true
	pc.AfterConnect = r.checkIdentity
	pool, err := OpenPool(ctx, url, pc)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	r.pool = pool
	r.probe(ctx)
	return r, nil
}

// Close closes the replica's pool, once any nudge in flight is done.
func (r *Replica) Close() {
	r.nudges.Wait()
	r.pool.Close()
}

// identityQuery names the cluster and the database a connection reached.
const identityQuery = `SELECT s.system_identifier, d.oid::bigint FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()`

// checkIdentity fails a new replica connection that did not reach a copy
// of the primary's database: another cluster, or another database of it.
func (r *Replica) checkIdentity(ctx context.Context, conn *pgx.Conn) error {
	var sys, db, psys, pdb int64
	if err := conn.QueryRow(ctx, identityQuery, pgx.QueryExecModeSimpleProtocol).Scan(&sys, &db); err != nil {
		return fmt.Errorf("read the replica's identity: %w", interpretError(err))
	}
	if err := r.primary.QueryRow(ctx, identityQuery, pgx.QueryExecModeSimpleProtocol).Scan(&psys, &pdb); err != nil {
		return fmt.Errorf("read the primary's identity to compare the replica's with: %w", interpretError(err))
	}
	switch {
	case sys != psys:
		return fmt.Errorf("%w: another cluster (system identifier %d, the primary's %d)", ErrReplicaUntrusted, sys, psys)
	case db != pdb:
		return fmt.Errorf("%w: another database of the cluster (oid %d, the primary's %d)", ErrReplicaUntrusted, db, pdb)
	}
	return nil
}

// Fence reads the primary's fence for a read about to begin, sharing the
// statement with the reads that begin meanwhile (fenceGroup).
func (r *Replica) Fence(ctx context.Context) (Fence, error) {
	return r.fences.get(ctx, func(ctx context.Context) (Fence, error) { return readFence(ctx, r.primary) })
}

// replicaCheck reads, on the replica, whether it is still a standby, how
// far it has replayed, and the newest history it shows.
const replicaCheck = `SELECT pg_is_in_recovery(), COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0),
	COALESCE((pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint, 0), COALESCE((SELECT max(hi.id) FROM notify.histories hi), 0)`

// route runs read on the replica when it can answer as the primary would
// have at f, else on primary, and tells Observe which. read may be called
// twice (the replica failed midway): each call must start afresh. An error
// is read's on the primary, or the caller's context's.
func (r *Replica) route(ctx context.Context, kind string, f Fence, primary querier, read func(context.Context, querier) error) error {
	reason := ReasonUnfenced
	if !f.IsZero() {
		if reason = r.health.usable(); reason == "" {
			var err error
			if reason, err = r.tryReplica(ctx, kind, f, read); reason == "" {
				return nil
			}
			if ctx.Err() != nil {
				return err
			}
		}
	}
	r.observe(kind, SourcePrimary, reason)
	return read(ctx, primary)
}

// tryReplica runs read on a replica connection once it has replayed past
// f. It returns "" when it did, else why not, with the error behind it.
func (r *Replica) tryReplica(ctx context.Context, kind string, f Fence, read func(context.Context, querier) error) (string, error) {
	// Timeout is the replica's own time (connecting, statements); the
	// wait for it to replay far enough comes on top.
	actx, cancel := context.WithTimeout(ctx, r.cfg.Timeout+r.cfg.Wait)
	defer cancel()
	conn, err := r.pool.Acquire(actx)
	if err != nil {
		return r.failed(ctx, err), err
	}
	defer conn.Release()
	waited, reason, err := r.waitFor(ctx, actx, conn, f)
	if reason != "" {
		return reason, err
	}
	if err := read(actx, conn); err != nil {
		if ctx.Err() != nil {
			return ReasonError, err
		}
		if connectionLost(err) || actx.Err() != nil {
			return r.failed(ctx, err), err
		}
		r.cfg.Logger.WarnContext(ctx, "a read failed on the replica; reading from the primary", "read", kind, "err", err)
		return ReasonError, err
	}
	if waited {
		r.observe(kind, SourceReplica, ReasonWaited)
	} else {
		r.observe(kind, SourceReplica, ReasonCaughtUp)
	}
	return "", nil
}

// Sizes of a WAL page's header: the first page of a segment has a long one.
const (
	walShortHeader = 24
	walLongHeader  = 40
)

// reachable is the replay position at which a replica has replayed every
// record inserted before the primary's insert position lsn. The two differ
// when the last record ended at a page's end: the insert position then
// names where the next record will start, past the next page's header,
// while the replica's replay position is the end of the last record. Left
// as it is, an idle primary's fence could stay out of reach until
// something else writes WAL.
func (r *Replica) reachable(lsn int64) int64 {
	switch {
	case r.walSegment > 0 && lsn%r.walSegment == walLongHeader:
		return lsn - walLongHeader
	case r.walBlock > 0 && lsn%r.walBlock == walShortHeader:
		return lsn - walShortHeader
	}
	return lsn
}

// waitFor waits until the replica on conn has replayed past f, at most
// Wait, and checks that it is still a standby on the primary's history.
// It returns "" when the read may run on conn, else why not.
func (r *Replica) waitFor(ctx, actx context.Context, conn querier, f Fence) (waited bool, reason string, err error) {
	deadline := time.Now().Add(r.cfg.Wait)
	need := r.reachable(f.LSN)
	for pause := time.Millisecond; ; pause = min(2*pause, 10*time.Millisecond) {
		var inRecovery bool
		var replayed, received, history int64
		// A statement of its own, before the read's: the read's snapshot
		// is taken after the replica was seen to have replayed past f, so
		// it shows every commit before f.
		if err := conn.QueryRow(actx, replicaCheck).Scan(&inRecovery, &replayed, &received, &history); err != nil {
			return waited, r.failed(ctx, err), err
		}
		switch {
		case !inRecovery:
			r.health.distrust(ctx, "it was promoted: it is a primary now")
			return waited, ReasonUntrusted, nil
		case replayed >= need && history == f.History:
			return waited, "", nil
		case replayed >= need:
			// Past the fence, yet another newest history: it follows a
			// history the primary does not (the old primary's, after a
			// failover to another standby).
			return waited, ReasonUntrusted, nil
		case !time.Now().Before(deadline):
			return waited, ReasonLagging, nil
		}
		if received <= replayed {
			// It has replayed all it was sent: what it lacks is not
			// written out on the primary yet.
			r.nudge()
		}
		waited = true
		if err := sleep(actx, pause); err != nil {
			return waited, r.failed(ctx, err), err
		}
	}
}

// nudge makes the primary write its WAL out, once at a time: a fence is
// the primary's insert position, and WAL that no commit has flushed (a
// page pruned by a read, a transaction still open) can sit unwritten while
// nothing commits, so a replica would never reach the fence of a read on
// an idle primary. A commit flushes everything before it: a statement
// that takes a transaction id commits one, a few dozen bytes of WAL. It
// runs apart from the read, which goes on checking the replica.
func (r *Replica) nudge() {
	if !r.nudging.CompareAndSwap(false, true) {
		return
	}
	r.nudges.Add(1)
	go func() {
		defer r.nudges.Done()
		defer r.nudging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
		defer cancel()
		if _, err := r.primary.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			r.cfg.Logger.WarnContext(ctx, "could not make the primary write its WAL out for the replica", "err", err)
		}
	}()
}

// failed records that the replica could not be used because of err, and
// says why for Observe: the caller's context ending is no fault of the
// replica's.
func (r *Replica) failed(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return ReasonError
	}
	if errors.Is(err, ErrReplicaUntrusted) {
		r.health.distrust(ctx, err.Error())
		return ReasonUntrusted
	}
	r.health.down(ctx, err)
	return ReasonDown
}

func (r *Replica) observe(kind, source, reason string) {
	if r.cfg.Observe != nil {
		r.cfg.Observe(kind, source, reason)
	}
}

// connectionLost reports whether err means the connection or the server
// is gone, rather than that one statement failed.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return true // not the server's answer: the connection broke
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
