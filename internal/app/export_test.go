package app

import "github.com/jackc/pgx/v5/pgxpool"

// SessionPoolStat is the statistics of the pool that sign-ins and session
// look-ups use, for tests that check they did no database work.
func SessionPoolStat(a *App) *pgxpool.Stat { return a.authPool.Stat() }
