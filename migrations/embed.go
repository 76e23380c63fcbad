// Package migrations holds notifyd's schema as goose SQL migrations, embedded
// in the binary so `notifyd serve` and `notifyd migrate` need no files on disk.
package migrations

import "embed"

// FS is the set of migration files, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
