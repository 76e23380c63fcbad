package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
)

// Run drains the queue until ctx ends. On return, the worker holds no claim
// it could release and is not listed as busy.
func (w *Worker) Run(ctx context.Context) error {
	// Seqs are handed out on the database's history: record it, or move
	// past a lost one (a restore, a failover) before the first publish.
	// The queue's pool checks each connection it makes later.
	if e, err := w.queue.EnterHistory(ctx); err != nil {
		w.log.WarnContext(ctx, "check the database's history", "err", err)
	} else {
		postgres.LogEntered(ctx, w.log, e)
	}
	// Items left while no worker ran are due long ago: the first batches
	// sweep the whole queue, then the recent claims start.
	w.sweepFrom = &postgres.SweepCursor{}
	sweepCtx, stopSweeping := context.WithCancel(ctx)
	sweeping := make(chan struct{})
	go func() {
		defer close(sweeping)
		w.sweepLoop(sweepCtx)
	}()
	defer func() {
		stopSweeping()
		<-sweeping
	}()
	var busy *postgres.BusyMark
	var lastWork time.Time // when the last claim that found work began
	nextRescue := time.Time{}
	errDelay := time.Duration(0)
	defer func() {
		if busy != nil {
			cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = w.queue.MarkIdle(cleanup, busy)
		}
	}()
	for ctx.Err() == nil {
		if now := time.Now(); now.After(nextRescue) {
			if n, err := w.queue.RescueExpired(ctx, w.cfg.Lease); err != nil {
				w.log.WarnContext(ctx, "rescue expired leases", "err", err)
			} else if n > 0 {
				w.log.InfoContext(ctx, "took up items whose lease expired", "items", n)
			}
			nextRescue = now.Add(w.cfg.Lease / 2)
		}
		began := time.Now()
		handled, err := w.step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			errDelay = min(max(errDelay*2, 100*time.Millisecond), 5*time.Second)
			w.log.WarnContext(ctx, "claim failed; retrying", "err", err, "retry_in", errDelay)
			w.sleep(ctx, errDelay)
			continue
		}
		errDelay = 0
		if handled > 0 {
			quiet := began.Sub(lastWork) >= quietGap
			lastWork = began
			if busy == nil && quiet && handled == 1 && w.behind.IsZero() && len(w.wake) == 0 {
				// A lone item, no ring since and none shortly before: low
				// load. No worker was marked busy, so every insert the claim
				// did not see rings; sleep until it does rather than mark
				// busy and look twice more (four statements for every
				// notification).
				w.sleep(ctx, w.idleDelay(ctx))
				continue
			}
			// Busy: inserts stop ringing until the mark is given up (or its
			// connection ends with this process).
			if busy == nil {
				if m, err := w.queue.MarkBusy(ctx); err == nil {
					busy = m
					if w.cfg.Hooks.Busy != nil {
						w.cfg.Hooks.Busy(true)
					}
				}
			}
			continue
		}
		if busy != nil {
			err := w.queue.MarkIdle(ctx, busy)
			busy = nil // the mark is given up even when the wait failed
			if w.cfg.Hooks.Busy != nil {
				w.cfg.Hooks.Busy(false)
			}
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				// Producers that saw us busy may not have committed yet:
				// look again soon rather than sleep a whole poll interval.
				w.log.WarnContext(ctx, "mark idle", "err", err)
				w.sleep(ctx, 100*time.Millisecond)
				continue
			}
			continue // one more look: inserts that saw us busy are visible now
		}
		w.sleep(ctx, w.idleDelay(ctx))
	}
	return nil
}

// quietGap is how long before a claim that finds a lone item the last one
// that found work must have begun for the worker to go back to sleep
// unmarked. Closer together, the inserts come faster than the busy mark's
// round (mark, claim, give up, claim: about 2 ms here) and marking spares
// every node's worker a ring per insert; further apart (200 a second is
// 5 ms), each notification would pay that round for nothing.
const quietGap = 3 * time.Millisecond

// idleDelay is how long to sleep: the poll interval (jittered), or less if a
// retry falls due sooner.
func (w *Worker) idleDelay(ctx context.Context) time.Duration {
	p := w.cfg.PollInterval
	d := p - p/10 + rand.N(p/5+1)
	if due, ok, err := w.queue.NextDue(ctx, w.cfg.ClaimLookback); err == nil && ok {
		d = min(d, max(time.Until(due), time.Millisecond))
	}
	return d
}

func (w *Worker) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-w.wake:
	case <-t.C:
	}
}

// step handles one batch and returns how many items it took.
//
// Normally it claims and publishes in one statement (each queue item written
// once, one commit per batch). When that fails, the worker turns careful:
// it claims the next batch with a lease (status processing), publishes it,
// and if that fails too, publishes item by item, so the one bad
// notification is found, retried with back-off and eventually failed, while
// the others go out. Once a careful batch goes through cleanly, the fast
// path resumes.
func (w *Worker) step(ctx context.Context) (int, error) {
	if w.sweepFailed.Swap(false) {
		w.careful = true
	}
	if !w.careful {
		start := time.Now()
		var b postgres.Batch
		var err error
		if w.sweepFrom != nil {
			b, err = w.queue.SweepInTurn(ctx, w.cfg.BatchSize, *w.sweepFrom)
			if err == nil {
				w.sweepFrom = &b.Next
				if b.Items < w.cfg.BatchSize {
					w.sweepFrom = nil // swept to the end
				}
			}
		} else {
			b, err = w.queue.ClaimAndPublishFrom(ctx, w.cfg.BatchSize, w.cfg.ClaimLookback, w.behind)
			if err == nil {
				w.behind = time.Time{}
				if b.Items >= w.cfg.BatchSize { // more may wait after it: go on from there
					w.behind = b.Next.DueAt
				}
				w.catchingUp.Store(!w.behind.IsZero())
			}
		}
		if err == nil {
			w.reportBatch(ctx, b, time.Since(start))
			return b.Items, nil
		}
		if ctx.Err() != nil || errors.Is(err, notify.ErrUnavailable) {
			return 0, err
		}
		w.log.WarnContext(ctx, "batch publish failed; claiming with a lease to isolate the failing notification", "err", err)
		w.careful = true
	}
	claims, err := w.queue.Claim(ctx, w.cfg.ID, w.cfg.BatchSize)
	if err != nil {
		return 0, err
	}
	if len(claims) == 0 {
		w.careful = false
		return 0, nil
	}
	if w.cfg.Hooks.Claimed != nil {
		w.cfg.Hooks.Claimed(len(claims))
	}
	if failures := w.process(ctx, claims); failures == 0 {
		w.careful = false
	}
	return len(claims), nil
}

// reportBatch tells the hooks and the log what a claim-and-publish did.
func (w *Worker) reportBatch(ctx context.Context, b postgres.Batch, took time.Duration) {
	if w.cfg.Hooks.Sent != nil && len(b.Published) > 0 {
		w.cfg.Hooks.Sent(b.Published)
	}
	w.reportSetAside(ctx, b.SetAside)
	if b.Items == 0 {
		return
	}
	if w.cfg.Hooks.Claimed != nil {
		w.cfg.Hooks.Claimed(b.Items)
	}
	if w.cfg.Hooks.Published != nil {
		w.cfg.Hooks.Published(b.Items, b.LastSeq, took)
	}
}

// sweepLoop sweeps the whole queue every SweepInterval until ctx ends. It runs beside Run's
// loop: a sweep may read many index entries while a snapshot is held, and
// the recent claims must not wait for it.
func (w *Worker) sweepLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.sweep(ctx)
	}
}

// sweep claims and publishes due items from the start of the queue's
// index to its end, a batch at a time.
func (w *Worker) sweep(ctx context.Context) {
	var from postgres.SweepCursor
	for ctx.Err() == nil {
		if w.catchingUp.Load() {
			// Run's claims are walking a backlog in due order; a sweep
			// beside them would take every other batch of it, out of order.
			// What only a sweep finds waits for the next one.
			return
		}
		start := time.Now()
		b, err := w.queue.SweepAndPublish(ctx, w.cfg.BatchSize, from)
		if err != nil {
			if ctx.Err() == nil {
				w.log.WarnContext(ctx, "sweep failed; the worker will claim with a lease to isolate the failing notification", "err", err)
				if !errors.Is(err, notify.ErrUnavailable) {
					w.sweepFailed.Store(true)
					w.Wake()
				}
			}
			return
		}
		w.reportBatch(ctx, b, time.Since(start))
		if b.Items < w.cfg.BatchSize {
			return
		}
		from = b.Next
	}
}

// process publishes claimed items and returns how many failed. If the
// batch fails as a whole, each item is retried alone so one bad
// notification cannot hold back the others.
func (w *Worker) process(ctx context.Context, claims []postgres.Claim) int {
	start := time.Now()
	held, lastSeq, setAside, err := w.queue.Publish(ctx, w.cfg.ID, claims)
	if err == nil {
		w.reportSetAside(ctx, setAside)
		if w.cfg.Hooks.Published != nil && held > 0 {
			w.cfg.Hooks.Published(held, lastSeq, time.Since(start))
		}
		return 0
	}
	if ctx.Err() != nil {
		w.release(ctx, claims)
		return 0
	}
	if len(claims) > 1 {
		w.log.WarnContext(ctx, "batch publish failed; publishing items one by one", "items", len(claims), "err", err)
		failures := 0
		for _, c := range claims {
			failures += w.process(ctx, []postgres.Claim{c})
		}
		return failures
	}
	c := claims[0]
	next := time.Now().Add(w.retryDelay(c.Attempts))
	status, ferr := w.queue.Fail(ctx, w.cfg.ID, c, err.Error(), next)
	if ferr != nil {
		// The item stays processing; the lease brings it back.
		w.log.ErrorContext(ctx, "record failed attempt", "item_id", c.ItemID, "err", ferr, "publish_err", err)
		return 1
	}
	if w.cfg.Hooks.Failed != nil && status != "" {
		w.cfg.Hooks.Failed(status)
	}
	w.log.WarnContext(ctx, "publish failed", "item_id", c.ItemID, "notification_id", c.NotificationID,
		"attempt", c.Attempts, "max_attempts", c.MaxAttempts, "status", status, "next_attempt_at", next, "err", err)
	return 1
}

// reportSetAside logs each item a publish failed at once because its row
// cannot be delivered consistently (it slipped past the table's
// constraints): the rest of the batch went out; this one waits for an admin.
func (w *Worker) reportSetAside(ctx context.Context, items []string) {
	for _, item := range items {
		w.log.WarnContext(ctx, "notification set aside: its row cannot be delivered consistently; fix it and retry its queue item", "item", item)
	}
	if len(items) > 0 && w.cfg.Hooks.SetAside != nil {
		w.cfg.Hooks.SetAside(len(items))
	}
}

// release hands back claims when the worker is stopping, so they do not wait
// for the lease.
func (w *Worker) release(ctx context.Context, claims []postgres.Claim) {
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	n, err := w.queue.Release(cleanup, w.cfg.ID, claims)
	if err != nil && !errors.Is(err, context.Canceled) {
		w.log.WarnContext(ctx, "release claims at shutdown", "err", err)
		return
	}
	w.log.InfoContext(ctx, "released claims at shutdown", "items", n)
}
