package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/notifyd/notifyd/internal/listener"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/wire"
)

// tailPage is how many notifications one read of the feed returns.
const tailPage = 500

// tailDB follows the published feed in the database, the way a server's
// feed does: LISTEN notify_published as a doorbell, and after every ring
// (and every reconnect, and every poll) read what was published after the
// last seq printed. Seqs become visible in commit order, so reading "after
// the last seq" misses nothing.
func tailDB(ctx context.Context, c *common, o tailOptions, out *tailPrinter, stderr io.Writer) error {
	sess, err := openSession(ctx, c, stderr, "tail")
	if err != nil {
		return err
	}
	defer sess.Close(ctx)
	notes := postgres.NewNotifications(sess.pool)
	head, err := notes.Head(ctx)
	if err != nil {
		return explainDB(err)
	}
	after := head.LastSeq
	if o.from >= 0 {
		after = o.from
		if o.from < head.TruncatedBefore {
			fmt.Fprintf(stderr, "note: retention removed notifications up to seq %d; starting with what is left\n", head.TruncatedBefore)
		}
	}

	wake := make(chan struct{}, 1)
	ring := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	// LISTEN needs a session of its own: DATABASE_DIRECT_URL when set
	// (DATABASE_URL is then a transaction pooler, through which a LISTEN
	// hears nothing).
	listenURL := cmp.Or(c.directURL, sess.db.URL)
	lis, err := listener.New(listener.Config{URL: withApplicationName(listenURL, "notifyd-tail-listener"), Logger: sess.log})
	if err != nil {
		return err
	}
	lis.Handle("notify_published", func(string) { ring() })
	lis.OnConnect(ring)
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = lis.Run(lctx) }()
	defer wg.Wait()
	defer cancel()

	errDelay := time.Duration(0)
	for {
		delay := o.poll
		for ctx.Err() == nil {
			ns, bad, last, err := notes.Published(ctx, after, tailPage)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				errDelay = min(max(errDelay*2, 100*time.Millisecond), 5*time.Second)
				sess.log.WarnContext(ctx, "read published notifications; retrying", "err", explainDB(err), "after", after, "retry_in", errDelay)
				delay = errDelay
				break
			}
			errDelay = 0
			for _, n := range ns {
				d := wire.NotificationOf(n)
				raw, err := notificationMessage(d, n.PublishedAt)
				if err != nil {
					return fmt.Errorf("encode notification %s: %w", n.ID, err)
				}
				if err := out.print(n.PublishedAt, d, raw); err != nil {
					return err
				}
				after = n.Seq
			}
			for _, b := range bad {
				sess.log.WarnContext(ctx, "skipping a published row that cannot be delivered", "seq", b.Seq, "notification_id", b.NotificationID, "reason", b.Reason)
			}
			after = max(after, last)
			if len(ns)+len(bad) < tailPage {
				break
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// withApplicationName names the listener's connection in pg_stat_activity,
// unless the connection string already names one.
func withApplicationName(conn, name string) string {
	if strings.Contains(conn, "application_name") {
		return conn
	}
	if strings.Contains(conn, "://") {
		u, err := url.Parse(conn)
		if err != nil {
			return conn
		}
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return conn + " application_name=" + name
}
