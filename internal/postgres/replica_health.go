package postgres

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// The replica's health is what keeps reads from trying a replica that is
// down or not trusted: they go straight to the primary, and a probe alone
// tries the replica, at growing intervals (from 1s, doubling, at most
// ReplicaConfig.MaxBackoff), until it answers as a standby of the primary
// again. A read that finds the replica failing marks it down at once.

// ReplicaState is what reads make of the replica now.
type ReplicaState string

const (
	// ReplicaUp: reads try it (each still checks how far it replayed).
	ReplicaUp ReplicaState = "up"
	// ReplicaDown: it could not be reached; reads go to the primary.
	ReplicaDown ReplicaState = "down"
	// ReplicaUntrusted: it answers but is not a standby of the primary's
	// database (another cluster or database, or promoted); reads go to
	// the primary.
	ReplicaUntrusted ReplicaState = "untrusted"
)

// ReplicaStatus is the replica's state as last seen, for /readyz and logs.
type ReplicaStatus struct {
	State ReplicaState
	// Detail says why it is down or untrusted. It may name hosts and
	// users: for logs, not for public answers.
	Detail string
	// Since is when it entered State.
	Since time.Time
	// ReplayedLSN is how far it had replayed at the last probe (bytes).
	ReplayedLSN int64
	// LastReplayed is the commit time of the last transaction it had
	// replayed at the last probe (zero when unknown).
	LastReplayed time.Time
}

// Status is the replica's state as last seen.
func (r *Replica) Status() ReplicaStatus {
	r.health.mu.Lock()
	defer r.health.mu.Unlock()
	return r.health.st
}

// Run probes the replica until ctx ends: every ProbeInterval while it is
// up, with back-off while it is down or not trusted.
func (r *Replica) Run(ctx context.Context) {
	for {
		if err := sleep(ctx, r.probe(ctx)); err != nil {
			return
		}
	}
}

// probeQuery is what a probe reads of the replica.
const probeQuery = `SELECT pg_is_in_recovery(), COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0),
	pg_last_xact_replay_timestamp()`

// probe reads the replica's state once and returns when to probe next.
func (r *Replica) probe(ctx context.Context) time.Duration {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var inRecovery bool
	var replayed int64
	var at *time.Time
	err := r.pool.QueryRow(pctx, probeQuery).Scan(&inRecovery, &replayed, &at)
	h := &r.health
	switch {
	case ctx.Err() != nil:
		return 0
	case errors.Is(err, ErrReplicaUntrusted):
		h.distrust(ctx, err.Error())
	case err != nil:
		h.down(ctx, err)
	case !inRecovery:
		h.distrust(ctx, "it was promoted: it is a primary now")
	default:
		h.up(ctx, replayed, at)
		return r.cfg.ProbeInterval
	}
	return h.backoff()
}

// health is what the reads and the probe know of the replica's state.
type health struct {
	cfg      ReplicaConfig
	mu       sync.Mutex
	st       ReplicaStatus
	failures int // probes failed in a row
}

func (h *health) init(cfg ReplicaConfig) {
	h.cfg = cfg
	h.st = ReplicaStatus{State: ReplicaDown, Detail: "not reached yet", Since: time.Now()}
}

// usable returns "" when reads may try the replica, else why not.
func (h *health) usable() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.st.State {
	case ReplicaDown:
		return ReasonDown
	case ReplicaUntrusted:
		return ReasonUntrusted
	}
	return ""
}

// backoff counts a failed probe and returns the pause before the next:
// from 1s, doubling up to MaxBackoff, each between half and all of it.
func (h *health) backoff() time.Duration {
	h.mu.Lock()
	h.failures++
	n := h.failures
	h.mu.Unlock()
	d := h.cfg.MaxBackoff
	if n < 16 {
		d = min(time.Second<<(n-1), d)
	}
	return d/2 + rand.N(d/2+1)
}

func (h *health) up(ctx context.Context, replayed int64, at *time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st.State != ReplicaUp {
		h.cfg.Logger.InfoContext(ctx, "the replica is usable: replays and history pages read from it once it has replayed far enough",
			"was", string(h.st.State), "for", time.Since(h.st.Since).Round(time.Millisecond))
		h.st = ReplicaStatus{State: ReplicaUp, Since: time.Now()}
	}
	h.failures = 0
	h.st.ReplayedLSN = replayed
	if at != nil {
		h.st.LastReplayed = *at
	}
}

func (h *health) down(ctx context.Context, err error) {
	h.set(ctx, ReplicaDown, err.Error())
}

func (h *health) distrust(ctx context.Context, why string) {
	h.set(ctx, ReplicaUntrusted, why)
}

// set enters state, logging the change once.
func (h *health) set(ctx context.Context, state ReplicaState, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st.State == state && h.st.Detail == detail {
		return
	}
	h.cfg.Logger.WarnContext(ctx, "the replica is not used: replays and history pages read from the primary until it is back",
		"state", string(state), "why", detail)
	since := time.Now()
	if h.st.State == state {
		since = h.st.Since
	}
	h.st = ReplicaStatus{State: state, Detail: detail, Since: since, ReplayedLSN: h.st.ReplayedLSN, LastReplayed: h.st.LastReplayed}
}
