package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
)

const statusHelp = `usage: notifyd status [--json] [flags]

Shows the delivery queue at a glance: how many queue items are pending,
processing, sent and failed, how long the oldest pending one has waited, the
last seq published to the stream, and the most common errors of failed items
(put them back in line with notifyd retry).

A growing pending count with an old oldest-pending age means no worker is
running (start notifyd serve or notifyd worker) or it cannot keep up.

examples:
  notifyd status
  notifyd status --json | jq .queue.failed

flags (a flag marked "env" can also be set by that environment variable):
`

// statusReport is the JSON form of notifyd status.
type statusReport struct {
	Queue struct {
		Pending    int64 `json:"pending"`
		Processing int64 `json:"processing"`
		Sent       int64 `json:"sent"`
		Failed     int64 `json:"failed"`
	} `json:"queue"`
	OldestPendingAt         *time.Time     `json:"oldestPendingAt"`
	OldestPendingAgeSeconds *float64       `json:"oldestPendingAgeSeconds"`
	LastSeq                 int64          `json:"lastSeq"`
	TruncatedBefore         int64          `json:"truncatedBefore"`
	Failed                  int64          `json:"failed"`
	TopErrors               []statusErrors `json:"topErrors"`
}

type statusErrors struct {
	Error  string    `json:"error"`
	Count  int64     `json:"count"`
	Latest time.Time `json:"latest"`
}

func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var asJSON bool
	var top int
	s := newSettings("status", getenv, stderr)
	c.bind(s)
	quietByDefault(s, &c)
	s.Bool(&asJSON, "json", "", false, "print one JSON object instead of a table")
	s.Int(&top, "errors", "", 5, "show the `N` most common errors of failed items")
	s.fs.Usage = func() {
		fmt.Fprint(stderr, statusHelp)
		s.fs.PrintDefaults()
	}
	if err := s.parseNoArgs(args); err != nil {
		return helpOK(err)
	}
	if top < 0 || top > 100 {
		return usageError{fmt.Sprintf("--errors %d: want 0 to 100", top)}
	}
	sess, err := openSession(ctx, &c, stderr, "status")
	if err != nil {
		return err
	}
	defer sess.Close(ctx)
	queue := postgres.NewQueue(sess.pool)
	counts, err := queue.Counts(ctx)
	if err != nil {
		return explainDB(err)
	}
	head, err := postgres.NewNotifications(sess.pool).Head(ctx)
	if err != nil {
		return explainDB(err)
	}
	var errs []postgres.ErrorCount
	if top > 0 && counts.Failed > 0 {
		if errs, err = queue.TopErrors(ctx, top); err != nil {
			return explainDB(err)
		}
	}

	var r statusReport
	r.Queue.Pending, r.Queue.Processing, r.Queue.Sent, r.Queue.Failed = counts.Pending, counts.Processing, counts.Sent, counts.Failed
	if !counts.OldestPending.IsZero() {
		at := counts.OldestPending
		age := max(time.Since(at), 0).Seconds()
		r.OldestPendingAt, r.OldestPendingAgeSeconds = &at, &age
	}
	r.LastSeq, r.TruncatedBefore, r.Failed = head.LastSeq, head.TruncatedBefore, counts.Failed
	r.TopErrors = []statusErrors{}
	for _, e := range errs {
		r.TopErrors = append(r.TopErrors, statusErrors{Error: e.Error, Count: e.Count, Latest: e.Latest})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return printStatus(stdout, r)
}

func printStatus(w io.Writer, r statusReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	oldest := ""
	if r.OldestPendingAgeSeconds != nil {
		oldest = "oldest waiting " + time.Duration(*r.OldestPendingAgeSeconds*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintln(tw, "QUEUE\tITEMS\t")
	fmt.Fprintf(tw, "pending\t%d\t%s\n", r.Queue.Pending, oldest)
	fmt.Fprintf(tw, "processing\t%d\t\n", r.Queue.Processing)
	fmt.Fprintf(tw, "sent\t%d\t\n", r.Queue.Sent)
	fmt.Fprintf(tw, "failed\t%d\t\n", r.Queue.Failed)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nlast published seq: %d\n", r.LastSeq)
	if r.TruncatedBefore > 0 {
		fmt.Fprintf(w, "retention removed seqs up to: %d\n", r.TruncatedBefore)
	}
	if r.Failed == 0 {
		fmt.Fprintln(w, "failed items: 0")
		return nil
	}
	fmt.Fprintf(w, "failed items: %d (put them back with: notifyd retry --all, or --error-like/--since/--id)\n\n", r.Failed)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tLAST FAILED\tERROR")
	for _, e := range r.TopErrors {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", e.Count, e.Latest.Local().Format("2006-01-02 15:04:05"), oneLine(e.Error, 100))
	}
	return tw.Flush()
}

// oneLine makes s fit on one line of at most max runes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(no error recorded)"
	}
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
