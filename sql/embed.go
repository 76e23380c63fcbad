// Package sqlfiles holds the admin queries of sql/*.sql, the files people run
// with psql on a bad day (each starts with a comment saying what it answers
// and how to run it), embedded so notifyd's commands can reuse them.
package sqlfiles

import "embed"

// FS is the admin query files, one question or repair per file, named
// like queue_counts.sql. They use psql variables (-v name=value) and
// meta-commands, so they are run with psql, not sent to the server as is.
//
//go:embed *.sql
var FS embed.FS
