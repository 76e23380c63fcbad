package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/localdb"
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
		t := s.stmts[k]
		s.stmts[k] = StatementWork{Calls: t.Calls + w.Calls, Rows: t.Rows + w.Rows, ExecMs: t.ExecMs + w.ExecMs, Blocks: t.Blocks + w.Blocks}
	}
	return s, rows.Err()
}

// since is the work done between prev and s.
func (s dbSnapshot) since(prev dbSnapshot, stretch string) DBWork {
	w := DBWork{Stretch: stretch, Seconds: s.at.Sub(prev.at).Seconds(), CPUSeconds: (s.cpu - prev.cpu).Seconds(),
		Statements: map[string]StatementWork{}}
	for k, v := range s.stmts {
		d := v.sub(prev.stmts[k])
		if d.Calls == 0 {
			continue
		}
		w.Statements[k] = d
		w.Total = StatementWork{Calls: w.Total.Calls + d.Calls, Rows: w.Total.Rows + d.Rows, ExecMs: w.Total.ExecMs + d.ExecMs,
			Blocks: w.Total.Blocks + d.Blocks}
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
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	ticks := f.utime + f.stime + f.cutime + f.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, ent := range entries {
		child, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		c, err := procStat(child)
		if err != nil || c.ppid != pid {
			continue
		}
		ticks += c.utime + c.stime
	}
	return time.Duration(ticks) * time.Second / 100, nil // USER_HZ
}

type procFields struct{ ppid, utime, stime, cutime, cstime int }

// procStat reads /proc/<pid>/stat's parent and CPU times.
func procStat(pid int) (procFields, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procFields{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procFields{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procFields{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	var p procFields
	for _, x := range []struct {
		to *int
		at int
	}{{&p.ppid, 1}, {&p.utime, 11}, {&p.stime, 12}, {&p.cutime, 13}, {&p.cstime, 14}} {
		if *x.to, err = strconv.Atoi(f[x.at]); err != nil {
			return procFields{}, fmt.Errorf("malformed /proc/%d/stat", pid)
		}
	}
	return p, nil
}

// metricSamples reads the samples of the named counters from a node's
// /metrics, keyed by their label values joined by spaces ("replay replica
// caught_up"; "resumes database" for notifyd_stream_resumes_total).
func metricSamples(ctx context.Context, base string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			rest, ok := strings.CutPrefix(line, name+"{")
			if !ok {
				continue
			}
			labels, value, _ := strings.Cut(rest, "} ")
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			var key []string
			if name == "notifyd_stream_resumes_total" {
				key = append(key, "resumes")
			}
			for _, l := range strings.Split(labels, ",") {
				_, val, _ := strings.Cut(l, "=")
				key = append(key, strings.Trim(val, `"`))
			}
			out[strings.Join(key, " ")] += v
		}
	}
	return out, sc.Err()
}
