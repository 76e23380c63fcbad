package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// walCounters is a pg_stat_wal snapshot.
type walCounters struct {
	ok           bool
	bytes        float64
	records, fpi int64
	syncs        int64
}

// walDelta is WAL written during a run. Single-row autocommit inserts are
// bound by commit flushes on most disks, so bytes per insert and flushes per
// second say why a trigger costs what it costs.
type walDelta struct {
	BytesPerInsert   float64 `json:"bytes_per_insert"`
	RecordsPerInsert float64 `json:"records_per_insert"`
	SyncsPerSecond   float64 `json:"syncs_per_second"`
	FullPageImages   int64   `json:"full_page_images"`
}

// readWAL snapshots pg_stat_wal; a server without it (before 14) reports
// nothing rather than failing the run.
func readWAL(ctx context.Context, pool *pgxpool.Pool) walCounters {
	var c walCounters
	err := pool.QueryRow(ctx, `SELECT wal_bytes::float8, wal_records, wal_fpi, wal_sync FROM pg_stat_wal`).
		Scan(&c.bytes, &c.records, &c.fpi, &c.syncs)
	c.ok = err == nil
	return c
}

func (c walCounters) since(before walCounters, inserts int64, seconds float64) walDelta {
	if !c.ok || !before.ok || inserts == 0 || seconds <= 0 {
		return walDelta{}
	}
	n := float64(inserts)
	return walDelta{BytesPerInsert: (c.bytes - before.bytes) / n, RecordsPerInsert: float64(c.records-before.records) / n,
		SyncsPerSecond: float64(c.syncs-before.syncs) / seconds, FullPageImages: c.fpi - before.fpi}
}
