// Package web holds the browser side of notifyd, embedded in the binary:
// the notification client and React hook under static/ (served at
// /static/), plain ES modules that need no build step, and the HTML pages
// under pages/ (the monitoring page /test-notifications, whose script and
// style are in static/).
package web

import "embed"

// Static is the static/ directory: the files served under /static/.
//
//go:embed static
var Static embed.FS

// Pages is the pages/ directory: HTML documents served at their own routes.
//
//go:embed pages
var Pages embed.FS
