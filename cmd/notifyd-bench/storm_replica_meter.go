package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// dbMeter reads what one PostgreSQL cluster has done so far: its
// processes' CPU and the statements run on the bench database.
type dbMeter struct {
	cluster *localdb.Cluster
	pool    *pgxpool.Pool // on the bench database of that cluster
}

// dbSnapshot is a dbMeter's reading.
type dbSnapshot struct {
	at    time.Time
	cpu   time.Duration
	stmts map[string]StatementWork
}

// snapshot reads the cluster now.
func (m *dbMeter) snapshot(ctx context.Context) (dbSnapshot, error) {
	s := dbSnapshot{at: time.Now(), stmts: map[string]StatementWork{}}
	cpu, err := clusterCPU(m.cluster.PID())
	if err != nil {
		return s, err
	}
	s.cpu = cpu
	rows, err := m.pool.Query(ctx, `SELECT query, calls, rows, total_exec_time, shared_blks_hit + shared_blks_read
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return s, fmt.Errorf("read pg_stat_statements on port %d: %w", m.cluster.Port(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var w StatementWork
		if err := rows.Scan(&q, &w.Calls, &w.Rows, &w.ExecMs, &w.Blocks); err != nil {
			return s, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		k := readKind(q)
		s.stmts[k] = s.stmts[k].plus(w, 1)
	}
	return s, rows.Err()
}

// since is the work done between prev and s.
func (s dbSnapshot) since(prev dbSnapshot, stretch string) DBWork {
	w := DBWork{Stretch: stretch, Seconds: s.at.Sub(prev.at).Seconds(), CPUSeconds: (s.cpu - prev.cpu).Seconds(),
		Statements: map[string]StatementWork{}}
	for k, v := range s.stmts {
		d := v.plus(prev.stmts[k], -1)
		if d.Calls == 0 {
			continue
		}
		w.Statements[k] = d
		w.Total = w.Total.plus(d, 1)
	}
	return w
}

// readKind names what one of notifyd's statements is for, from its
// text (pg_stat_statements keeps it).
func readKind(q string) string {
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(q, x) {
				return false
			}
		}
		return true
	}
	switch {
	case has("u(through, count)"):
		return "opening (mutes, unread count, head)"
	case has("read_cursors", "count(*)"):
		return "unread count"
	case has("p.user_id = ANY"):
		return "mutes of resuming streams"
	case has("undeliverable_reason(n) AS reason"):
		return "feed"
	case has("n.seq > $3 AND n.seq <= $4"):
		return "replay"
	case has("n.seq < $3 AND n.seq > $4"):
		return "history"
	case has("queue_items"), has("notify.notifications", "INSERT"):
		return "queue, publish, inserts"
	case has("pg_last_wal_replay_lsn"), has("pg_current_wal_insert_lsn"), has("pg_current_xact_id"):
		return "replica checks, fences, nudges"
	}
	return "other (bench, probes)"
}

// clusterCPU is the CPU the cluster whose postmaster is pid has used: the
// postmaster's own, its exited children's (which it reaped) and its live
// children's.
func clusterCPU(pid int) (time.Duration, error) {
	st, err := cluster.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	total := st.User + st.System + st.ChildUser + st.ChildSystem
	children, err := cluster.Children(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range children {
		if cs, err := cluster.ReadStat(c); err == nil {
			total += cs.User + cs.System
		}
	}
	return total, nil
}
