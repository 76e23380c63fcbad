package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/testkit"
)

// failedItems inserts one notification per error and marks its queue item
// failed with that error, hoursAgo[i] hours ago. It returns the item ids.
func (c *cli) failedItems(errs []string, hoursAgo []int) []int64 {
	c.t.Helper()
	ids := make([]int64, len(errs))
	for i, e := range errs {
		msg := fmt.Sprintf("failing %d", i)
		c.exec(`INSERT INTO notify.notifications (message) VALUES ($1)`, msg)
		err := c.db.Pool.QueryRow(context.Background(), `UPDATE notify.queue_items
			SET status = 'failed', attempts = 3, last_error = $1, next_attempt_at = now() + interval '1 hour',
			    updated_at = now() - make_interval(hours => $2)
			WHERE notification_id = (SELECT id FROM notify.notifications WHERE message = $3)
			RETURNING id`, e, hoursAgo[i], msg).Scan(&ids[i])
		if err != nil {
			c.t.Fatal(err)
		}
	}
	return ids
}

// pendingAgain reports whether item id was put back: pending, no attempts, due.
func (c *cli) pendingAgain(id int64) bool {
	c.t.Helper()
	return c.count(`SELECT count(*) FROM notify.queue_items
		WHERE id = $1 AND status = 'pending' AND attempts = 0 AND next_attempt_at <= now()`, id) == 1
}

func TestRetry(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	c := newCLI(t)
	ids := c.failedItems(
		[]string{"timeout talking to A", "TIMEOUT talking to B", "connection refused", "bad payload", "bad payload", "old failure"},
		[]int{0, 0, 0, 0, 0, 48})
	failed := func() int64 { return c.count(`SELECT count(*) FROM notify.queue_items WHERE status = 'failed'`) }

	t.Run("status lists the failures and their top errors", func(t *testing.T) {
		text := c.must("status")
		for _, want := range []string{`(?m)^failed\s+6\s*$`, `failed items: 6`, `(?m)^2\s+\S+ \S+\s+bad payload$`} {
			if !regexp.MustCompile(want).MatchString(text) {
				t.Errorf("status does not match %s:\n%s", want, text)
			}
		}
	})

	t.Run("without a selector it refuses and changes nothing", func(t *testing.T) {
		_, _, err := c.run("retry")
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--all") {
			t.Fatalf("got %v, want a usage error that says to pass --all", err)
		}
		if n := failed(); n != 6 {
			t.Errorf("%d failed after a refused retry, want 6", n)
		}
	})

	t.Run("dry run counts and changes nothing", func(t *testing.T) {
		if out := c.must("retry", "--error-like", "timeout", "--dry-run"); !strings.Contains(out, "would retry 2 failed items") {
			t.Errorf("dry run printed %q", out)
		}
		if n := failed(); n != 6 {
			t.Errorf("%d failed after a dry run, want 6", n)
		}
	})

	t.Run("by id, waking the workers", func(t *testing.T) {
		conn, err := pgx.Connect(context.Background(), c.db.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `LISTEN notify_queue`); err != nil {
			t.Fatal(err)
		}
		if out := c.must("retry", "--id", itoa(ids[2])); out != "retried 1 failed item\n" {
			t.Errorf("retry --id printed %q", out)
		}
		if !c.pendingAgain(ids[2]) {
			t.Error("item is not pending again")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.WaitForNotification(ctx); err != nil {
			t.Errorf("no NOTIFY notify_queue after the retry: %v", err)
		}
	})

	t.Run("by notification id", func(t *testing.T) {
		var nid string
		if err := c.db.Pool.QueryRow(context.Background(), `SELECT notification_id::text FROM notify.queue_items WHERE id = $1`, ids[3]).Scan(&nid); err != nil {
			t.Fatal(err)
		}
		if out := c.must("retry", "--id", nid); out != "retried 1 failed item\n" {
			t.Errorf("retry --id %s printed %q", nid, out)
		}
		if !c.pendingAgain(ids[3]) {
			t.Error("item is not pending again")
		}
	})

	t.Run("an id that is not failed retries nothing", func(t *testing.T) {
		out, errOut, err := c.run("retry", "--id", itoa(ids[2]))
		if err != nil || out != "retried 0 failed items\n" || !strings.Contains(errOut, "only items with status failed") {
			t.Errorf("got %q / %q / %v", out, errOut, err)
		}
	})

	t.Run("by error pattern and time", func(t *testing.T) {
		if out := c.must("retry", "--error-like", "timeout%", "--since", "1h"); out != "retried 2 failed items\n" {
			t.Errorf("retry --error-like printed %q", out)
		}
		if !c.pendingAgain(ids[0]) || !c.pendingAgain(ids[1]) {
			t.Error("the timeouts are not pending again")
		}
	})

	t.Run("since leaves older failures alone", func(t *testing.T) {
		if out := c.must("retry", "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)); out != "retried 1 failed item\n" {
			t.Errorf("retry --since printed %q", out)
		}
		if !c.pendingAgain(ids[4]) || c.pendingAgain(ids[5]) {
			t.Error("--since 1h ago should retry the recent failure only")
		}
	})

	t.Run("all", func(t *testing.T) {
		if out := c.must("retry", "--all"); out != "retried 1 failed item\n" {
			t.Errorf("retry --all printed %q", out)
		}
		if n := failed(); n != 0 {
			t.Errorf("%d still failed after --all", n)
		}
	})

	t.Run("a worker publishes what was retried", func(t *testing.T) {
		c.startWorker()
		testkit.Eventually(t, 20*time.Second, "every retried item to be sent", func() bool {
			return c.count(`SELECT count(*) FROM notify.queue_items WHERE status = 'sent'`) == 6
		})
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
