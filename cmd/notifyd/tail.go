package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/wire"
)

const tailHelp = `usage: notifyd tail (--url URL --token TOKEN | --db) [flags]

Prints notifications as they are published, one line each:
  SEQ  TIME  SEVERITY  TARGETS  [MODULE/ACTION] MESSAGE
or, with --json, one stream message per line, the same JSON a browser gets:
  {"type":"notification","notificationId":…,"data":{"id":…,"seq":…,"message":…},"timestamp":…}
It runs until Ctrl-C, or until --count notifications have been printed.

Two sources:
  --url URL --token TOKEN   one user's stream from a running notifyd, over
                            HTTP, exactly what that user's browser receives.
                            After a disconnect it reconnects with back-off and
                            resumes with Last-Event-ID, so nothing is missed.
  --db                      every published notification, read from the
                            database (LISTEN notify_published, then the
                            notifications after the last seq). Needs no server
                            or token, but a worker (notifyd serve or notifyd
                            worker) must be running to publish.

By default only notifications published from now on are shown; --from SEQ
starts after seq SEQ instead (--from 0: all retained history).

examples:
  notifyd tail --db
  notifyd tail --db --from 0 --count 10 --json
  TOKEN=$(notifyd dev-token --sub alice --roles ADMIN)
  notifyd tail --url http://127.0.0.1:8080 --token "$TOKEN"

flags (a flag marked "env" can also be set by that environment variable):
`

// errTailDone: --count notifications were printed.
var errTailDone = errors.New("count reached")

func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var o tailOptions
	var count int
	var asJSON bool
	var from string
	s := newSettings("tail", getenv, stderr)
	c.bind(s)
	c.bindDirect(s)
	quietByDefault(s, &c)
	s.String(&o.url, "url", "NOTIFY_URL", "", "base `URL` of a running notifyd, e.g. http://127.0.0.1:8080 (or the full stream URL)")
	s.String(&o.token, "token", "NOTIFY_TOKEN", "", "bearer `TOKEN` of the user whose stream to read (with --url); see notifyd dev-token")
	s.Bool(&o.db, "db", "", false, "follow every published notification in the database instead of one user's stream")
	s.String(&from, "from", "", "", "start after this `SEQ` (0: all retained history); default: only notifications published from now on")
	s.Int(&count, "count", "", 0, "stop after printing `N` notifications (0: run until Ctrl-C)")
	s.Bool(&asJSON, "json", "", false, "print one JSON stream message per line instead of text")
	s.Duration(&o.poll, "poll-interval", "NOTIFY_POLL_INTERVAL", app.Config{}.WithDefaults().Worker.PollInterval, "with --db: re-read the feed this often (a `DURATION`) even without a NOTIFY")
	s.fs.Usage = func() {
		fmt.Fprint(stderr, tailHelp)
		s.fs.PrintDefaults()
	}
	if err := s.parseNoArgs(args); err != nil {
		return helpOK(err)
	}
	o.from = -1
	if from != "" {
		n, err := strconv.ParseInt(from, 10, 64)
		if err != nil || n < 0 {
			return usageError{fmt.Sprintf("--from %q: want a seq, 0 or more (the SEQ column of tail, or lastSeq of notifyd status)", from)}
		}
		o.from = n
	}
	switch {
	case o.db && o.url != "":
		return usageError{"tail reads either a user's stream (--url) or the database (--db), not both"}
	case !o.db && o.url == "":
		return usageError{"tail needs a source: --url URL --token TOKEN for one user's stream from a running notifyd, or --db to follow every published notification in the database"}
	case o.url != "" && o.token == "":
		return usageError{"tail --url needs --token (or NOTIFY_TOKEN), a bearer token for the user whose stream to read; for a development server: notifyd dev-token --sub ID"}
	case count < 0:
		return usageError{fmt.Sprintf("--count %d: want 0 (no limit) or more", count)}
	}
	out := &tailPrinter{w: stdout, json: asJSON, limit: count}
	var err error
	if o.db {
		err = tailDB(ctx, &c, o, out, stderr)
	} else {
		err = tailURL(ctx, &c, o, out, stderr)
	}
	if errors.Is(err, errTailDone) || ctx.Err() != nil {
		return nil // --count reached, or Ctrl-C (whatever it interrupted)
	}
	return err
}

type tailOptions struct {
	url, token string
	db         bool
	from       int64 // -1: from now
	poll       time.Duration
}

// tailPrinter writes notifications and counts them against --count.
type tailPrinter struct {
	w       io.Writer
	json    bool
	limit   int
	printed int
}

// print writes one notification message (raw is its JSON, one line) and
// returns errTailDone once --count is reached.
func (p *tailPrinter) print(at time.Time, d wire.Notification, raw []byte) error {
	var err error
	if p.json {
		_, err = fmt.Fprintf(p.w, "%s\n", raw)
	} else {
		_, err = fmt.Fprintf(p.w, "%-6d %s  %-8s  %-18s  %s\n", d.Seq, at.Local().Format("2006-01-02 15:04:05.000"),
			d.Severity, targetsOf(d), labelled(d))
	}
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	p.printed++
	if p.limit > 0 && p.printed >= p.limit {
		return errTailDone
	}
	return nil
}

func targetsOf(d wire.Notification) string {
	var parts []string
	if d.TargetUserID != nil {
		parts = append(parts, "user:"+*d.TargetUserID)
	}
	if len(d.TargetRoles) > 0 {
		parts = append(parts, "roles:"+strings.Join(d.TargetRoles, ","))
	}
	if len(parts) == 0 {
		return "everyone"
	}
	return strings.Join(parts, " ")
}

func labelled(d wire.Notification) string {
	msg := strings.Join(strings.Fields(d.Message), " ")
	var label []string
	for _, p := range []*string{d.Module, d.ActionType} {
		if p != nil && *p != "" {
			label = append(label, *p)
		}
	}
	if len(label) == 0 {
		return msg
	}
	return "[" + strings.Join(label, "/") + "] " + msg
}

// notificationMessage is the stream message of a published notification,
// built the way the server builds it.
func notificationMessage(d wire.Notification, at time.Time) ([]byte, error) {
	return json.Marshal(wire.Message{Type: wire.TypeNotification, Data: d, Timestamp: at.UnixMilli(), NotificationID: d.ID})
}
