// Package web holds the browser side of notifyd, embedded in the binary:
// the notification client and React hook under static/ (served at
// /static/), plain ES modules that need no build step.
package web

import "embed"

// Static is the static/ directory: the files served under /static/.
//
//go:embed static
var Static embed.FS
