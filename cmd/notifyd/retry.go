package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/postgres"
)

const retryHelp = `usage: notifyd retry (--id N ... | --error-like PATTERN | --since TIME | --all) [flags]

Puts failed queue items back in line: their status becomes pending again with
a fresh set of attempts, due now, and the workers are woken (NOTIFY
notify_queue) so a running worker publishes them at once. Prints how many
items were put back. notifyd status shows what failed and why.

Choose the items with one or more selectors (an item must match all of
them), or --all for every failed item; with no selector nothing is done.
Items an admin cancelled (last error "cancelled by admin") are failed too:
--all brings them back as well.

examples:
  notifyd retry --id 42 --id 43
  notifyd retry --id 6f1c2a9e-6c1b-4d0e-9a53-0e2f7b1d8c11
  notifyd retry --error-like "connection refused" --since 1h
  notifyd retry --all --dry-run

flags (a flag marked "env" can also be set by that environment variable):
`

// idList collects --id values: queue item ids (numbers) or notification ids
// (uuids), repeated or comma separated.
type idList struct {
	items []int64
	notes []string
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

func (l *idList) String() string { return "" }

func (l *idList) Set(v string) error {
	for _, id := range splitList(v) {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > 0 {
			l.items = append(l.items, n)
		} else if uuidRE.MatchString(id) {
			l.notes = append(l.notes, id)
		} else {
			return fmt.Errorf("%q is neither a queue item id (a positive number) nor a notification id (a uuid)", id)
		}
	}
	return nil
}

func runRetry(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var ids idList
	var f postgres.RetryFilter
	var since string
	var dryRun bool
	s := newSettings("retry", getenv, stderr)
	c.bind(s)
	quietByDefault(s, &c)
	s.fs.Var(&ids, "id", "a failed item to retry: queue item `ID` (a number) or notification id (a uuid); repeat the flag or separate with commas")
	s.String(&f.ErrorLike, "error-like", "", "", "items whose last error matches this case-insensitive SQL LIKE `PATTERN` (% any text, _ any character); without a % it matches anywhere in the error")
	s.String(&since, "since", "", "", "items that failed at or after `TIME`: RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01), or a duration ago (90m, 24h)")
	s.Bool(&f.All, "all", "", false, "retry every failed item")
	s.Bool(&dryRun, "dry-run", "", false, "only count the items that would be retried")
	s.fs.Usage = func() {
		fmt.Fprint(stderr, retryHelp)
		s.fs.PrintDefaults()
	}
	if err := s.parseNoArgs(args); err != nil {
		return helpOK(err)
	}
	f.ItemIDs, f.NotificationIDs = ids.items, ids.notes
	if since != "" {
		t, err := parseSince(since, time.Now())
		if err != nil {
			return usageError{err.Error()}
		}
		f.Since = t
	}
	selectors := len(f.ItemIDs) > 0 || len(f.NotificationIDs) > 0 || f.ErrorLike != "" || !f.Since.IsZero()
	switch {
	case !selectors && !f.All:
		return usageError{"retry needs a selector: --id N, --error-like PATTERN or --since TIME; pass --all to retry every failed item (see notifyd status for what failed)"}
	case selectors && f.All:
		return usageError{"--all retries every failed item: drop it, or drop --id/--error-like/--since"}
	}
	sess, err := openSession(ctx, &c, stderr, "retry")
	if err != nil {
		return err
	}
	defer sess.Close(ctx)
	queue := postgres.NewQueue(sess.pool)
	if dryRun {
		n, err := queue.CountRetryable(ctx, f)
		if err != nil {
			return explainDB(err)
		}
		fmt.Fprintf(stdout, "would retry %d failed %s (dry run: nothing changed)\n", n, plural(n, "item", "items"))
		return nil
	}
	n, err := queue.RetryFailed(ctx, f)
	if errors.Is(err, postgres.ErrNoSelector) {
		return usageError{"retry needs a selector; pass --all to retry every failed item"}
	}
	if err != nil {
		return explainDB(err)
	}
	fmt.Fprintf(stdout, "retried %d failed %s\n", n, plural(n, "item", "items"))
	if n == 0 {
		fmt.Fprintln(stderr, "nothing matched: only items with status failed are retried (notifyd status lists them)")
	}
	return nil
}

// parseSince reads --since: a time, a date, or a duration before now.
func parseSince(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a time such as 2024-05-01T12:00:00Z or 2024-05-01, or a duration ago such as 90m or 24h", v)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
