// Package feed follows the published stream for one process: when the
// listener hears a publish (or reconnects, or the poll ticks), it reads the
// notifications after the last seq it saw, in seq order, with one indexed
// range query per page, serializes each once and hands it to the hub.
//
// Reading from the table instead of trusting NOTIFY payloads is what makes a
// lost NOTIFY harmless: the next wake-up reads everything the process missed.
// What this process published itself (its workers' batches, its notify.send
// calls) it already holds as the read would return it, so Offer (OfferBatch
// for a worker) hands that on without the read, and the publish's own ring,
// naming a seq already handed on, wakes nothing (Rung).
package feed

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/wire"
)

// Config tunes the feed.
type Config struct {
	// Page is how many notifications one query reads. Default 1000.
	Page int
	// PollInterval re-reads even without a wake-up. Default 5s.
	PollInterval time.Duration
	// Logger receives read failures. Default slog.Default().
	Logger *slog.Logger
	// SetAside is called for each published row the feed could not deliver
	// (metrics).
	SetAside func()
}

// Feed is the process's reader of the published stream.
type Feed struct {
	cfg   Config
	store *postgres.Notifications
	hub   *hub.Hub
	wake  chan struct{}
	// offered holds batches given to OfferLater until Run hands them on.
	offered chan []notify.Notification
	ready   atomic.Bool
	// handing is held while notifications are handed to the hub and the
	// position moves past them: by the feed's own reads and by Offer, so
	// that each seq goes to the hub once, in order.
	handing  sync.Mutex
	position atomic.Int64
	// afterRead, in tests, runs between a read and its handing on.
	afterRead func()
}

// New returns a feed that publishes into h.
func New(store *postgres.Notifications, h *hub.Hub, cfg Config) *Feed {
	cfg.Page = cmp.Or(cfg.Page, 1000)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Feed{cfg: cfg, store: store, hub: h, wake: make(chan struct{}, 1), offered: make(chan []notify.Notification, offeredBatches)}
}

// offeredBatches is how many batches OfferLater holds for Run: enough for
// the workers of one process to run ahead of a fan-out for a moment.
const offeredBatches = 64

// Wake asks the feed to read now. It never blocks.
func (f *Feed) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Position is the last seq handed to the hub.
func (f *Feed) Position() int64 { return f.position.Load() }

// Ready reports whether the feed knows its starting position.
func (f *Feed) Ready() bool { return f.ready.Load() }

// Start reads the stream head, the position Run starts from. A process
// calls it before it accepts streams: a stream that subscribed before the
// feed knew its start could otherwise miss what was published in between
// (the feed would start past it), with no resume point to bring it back.
func (f *Feed) Start(ctx context.Context) error {
	head, err := f.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("feed: %w", err)
	}
	f.begin(head.LastSeq)
	return nil
}

// begin sets the starting position, and tells the hub its window of recent
// events starts there: from now on the feed hands it every notification
// after it, in order, so resumes inside the window need no replay query.
func (f *Feed) begin(position int64) {
	f.handing.Lock()
	defer f.handing.Unlock()
	f.hub.StartWindow(position)
	f.position.Store(position)
	f.ready.Store(true)
}

// Run follows the stream until ctx ends. It starts at the current head
// (read by Start, or here if Start was not called): history is for
// replays, not for streams that are not open yet.
func (f *Feed) Run(ctx context.Context) error {
	for !f.ready.Load() {
		head, err := f.store.Head(ctx)
		if err == nil {
			f.begin(head.LastSeq)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		f.cfg.Logger.WarnContext(ctx, "read stream head; retrying", "err", err)
		f.wait(ctx, time.Second)
	}
	errDelay := time.Duration(0)
	for ctx.Err() == nil {
		if err := f.drain(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			errDelay = min(max(errDelay*2, 50*time.Millisecond), 2*time.Second)
			f.cfg.Logger.WarnContext(ctx, "read published notifications; retrying", "err", err, "after", f.Position(), "retry_in", errDelay)
			f.wait(ctx, errDelay)
			continue
		}
		errDelay = 0
		f.wait(ctx, f.cfg.PollInterval)
	}
	return nil
}

// wait returns when ctx ends, the feed is woken or d has passed; batches
// offered meanwhile (OfferLater) are handed on as they come, and those
// waiting when it returns are handed on first: the ring that woke the feed
// may be for one of them, which then needs no read.
func (f *Feed) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	defer f.handOffered(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
			return
		case <-t.C:
			return
		case ns := <-f.offered:
			f.Offer(ctx, ns...)
		}
	}
}

// handOffered hands on the batches OfferLater holds, without waiting.
func (f *Feed) handOffered(ctx context.Context) {
	for {
		select {
		case ns := <-f.offered:
			f.Offer(ctx, ns...)
		default:
			return
		}
	}
}

// drain hands every notification after the position to the hub. The
// store reads every row safely whatever it holds, and returns apart those
// that cannot be delivered consistently; they are set aside, so one odd row
// never stops delivery of the rest on any node.
func (f *Feed) drain(ctx context.Context) error {
	for {
		ns, bad, last, err := f.store.Published(ctx, f.Position(), f.cfg.Page)
		if err != nil {
			return fmt.Errorf("read after seq %d: %w", f.Position(), err)
		}
		if f.afterRead != nil {
			f.afterRead()
		}
		if err := f.handOn(ctx, ns, bad, last); err != nil {
			return err
		}
		if len(ns)+len(bad) < f.cfg.Page {
			return nil
		}
	}
}

// handOn hands a page read after some position to the hub. Offer may have
// moved the position on since the read began: what it already handed on is
// skipped, and a gap is judged from where the position is now.
func (f *Feed) handOn(ctx context.Context, ns []notify.Notification, bad []postgres.Undeliverable, last int64) error {
	f.handing.Lock()
	defer f.handing.Unlock()
	position := f.Position()
	for len(ns) > 0 && ns[0].Seq <= position {
		ns = ns[1:]
	}
	for len(bad) > 0 && bad[0].Seq <= position {
		bad = bad[1:]
	}
	if first := firstSeq(ns, bad); first > position+1 {
		if err := f.crossGap(ctx, position, first); err != nil {
			return err
		}
	}
	f.deliver(ctx, ns, bad)
	if last > f.Position() {
		f.position.Store(last)
	}
	return nil
}

// Offer is given notifications this process has just published (a
// notify.send, or a worker's batch: committed, seqs set, in seq order) so
// that its streams need not wait for the NOTIFY and the read that would
// bring them back. When they start right after the position, with no gap
// between them, they go to the hub at once: seqs are taken under the
// publish turn, held to commit, so every lower seq is already committed
// (or rolled back) and this node has handed on all of them. What the feed
// already handed on is skipped; anything else only wakes the feed, whose
// read delivers it in its turn (the read skips what Offer handed on). It
// reports whether Offer handed on the last of ns.
//
// Only for nodes whose stream reads have no replica: a resume from a
// replica waits for the fence of the read that brought the notification,
// which an offered one never had (app wires it so).
func (f *Feed) Offer(ctx context.Context, ns ...notify.Notification) bool {
	if len(ns) == 0 {
		return false
	}
	f.handing.Lock()
	defer f.handing.Unlock()
	position := f.Position()
	for len(ns) > 0 && ns[0].Seq <= position {
		ns = ns[1:]
	}
	if len(ns) == 0 {
		return false // a read got there first
	}
	if !f.ready.Load() || ns[0].Seq != position+1 || !consecutive(ns) {
		f.Wake()
		return false
	}
	f.deliver(ctx, ns, nil)
	return true
}

// OfferBatch is how a worker offers the batch it has just published: a
// small one (the low load where a stream waits for each notification) at
// once, in the worker's goroutine, like Offer; a larger one through
// OfferLater, so that under load the worker's next claim does not wait for
// the fan-out of its last batch to every stream.
func (f *Feed) OfferBatch(ctx context.Context, ns []notify.Notification) {
	if len(ns) <= offerNowBatch {
		f.Offer(ctx, ns...)
		return
	}
	f.OfferLater(ns)
}

// offerNowBatch is the largest batch OfferBatch hands on in its caller's
// goroutine.
const offerNowBatch = 16

// OfferLater is Offer done by the feed's own goroutine (Run), for a
// caller that must not wait for the hand-on. Batches are handed on in the
// order they are given, and before a read the feed was woken for. When
// OfferLater gets ahead of the feed by more than a few batches, it only
// wakes the feed, whose read brings them.
func (f *Feed) OfferLater(ns []notify.Notification) {
	select {
	case f.offered <- ns:
	default:
		f.Wake()
	}
}

// Rung is the doorbell a publish rings (NOTIFY notify_published), with the
// last seq it took as payload. A ring for a seq this feed has already
// handed on (an Offer got there first) needs no read; any other ring, or
// one whose payload is not a seq (an admin's bare NOTIFY), wakes the feed.
func (f *Feed) Rung(payload string) {
	if seq, err := strconv.ParseInt(payload, 10, 64); err == nil && f.ready.Load() && seq <= f.Position() {
		return
	}
	f.Wake()
}

// ReadFunc reads the published notifications after a seq, at most limit
// (postgres.PublishedOn on the listener's connection); ok is false when a
// row among them cannot be delivered (the feed's own read sets it aside).
type ReadFunc func(ctx context.Context, after int64, limit int) (ns []notify.Notification, ok bool, err error)

// ringReadLimit is the most a ring's reader reads on the listener's
// connection: the few notifications of a ring at low load, where a stream
// waits for each. A larger gap is the feed's to read, in its goroutine.
const ringReadLimit = 16

// RungReading is Rung for a ring heard with a connection at hand whose
// server process is awake (it has just sent the ring): when the ring's seq
// is a few past the feed's position, read them with read and offer them
// (Offer), rather than wake the feed to read them on a pooled connection,
// whose server process may have to be woken first (a notification published
// by its producer's own commit, which no node holds, reaches the streams a
// hop sooner). Anything else, or a read that fails or finds a row it
// cannot deliver, wakes the feed as Rung does.
//
// Only for nodes whose stream reads have no replica, as Offer.
func (f *Feed) RungReading(ctx context.Context, payload string, read ReadFunc) {
	seq, err := strconv.ParseInt(payload, 10, 64)
	if err != nil || !f.ready.Load() {
		f.Wake()
		return
	}
	position := f.Position()
	if seq <= position {
		return
	}
	if seq-position > ringReadLimit {
		f.Wake()
		return
	}
	ns, ok, err := read(ctx, position, ringReadLimit)
	if err != nil || !ok || len(ns) == 0 || ns[len(ns)-1].Seq < seq {
		if err != nil {
			f.cfg.Logger.WarnContext(ctx, "read the notifications a ring announced; the feed reads them", "err", err)
		}
		f.Wake()
		return
	}
	f.Offer(ctx, ns...) // it wakes the feed itself when they do not follow its position
}

// consecutive reports whether ns's seqs follow one another without a gap.
func consecutive(ns []notify.Notification) bool {
	for i := 1; i < len(ns); i++ {
		if ns[i].Seq != ns[i-1].Seq+1 {
			return false
		}
	}
	return true
}

// firstSeq is the lowest seq of a page (0 when it is empty).
func firstSeq(ns []notify.Notification, bad []postgres.Undeliverable) int64 {
	first := int64(0)
	if len(ns) > 0 {
		first = ns[0].Seq
	}
	if len(bad) > 0 && (first == 0 || bad[0].Seq < first) {
		first = bad[0].Seq
	}
	return first
}

// crossGap looks at a gap in the seqs read (the next page starts at first,
// above position+1). Most gaps are seqs a rolled-back publish took. But
// when the database entered a new history under this node (a failover to a
// replica that had not received everything, a restore), the node has
// handed its streams notifications the database no longer has: position
// lies in the new history's hole. Every live stream is then told, with the
// status a client resuming from a lost seq gets ("lost", naming the hole),
// before anything of the new history; and the hub's window, which holds
// lost notifications, is emptied, so resumes read the database.
func (f *Feed) crossGap(ctx context.Context, position, first int64) error {
	holes, err := f.store.Holes(ctx)
	if err != nil {
		return fmt.Errorf("read history holes after a gap at seq %d: %w", position, err)
	}
	hole, lost := holes.Lost(position)
	if !lost || first < hole.First {
		return nil
	}
	f.cfg.Logger.WarnContext(ctx, "the database lost notifications this node delivered (a failover to a replica that "+
		"lacked them, or a restore): its streams are told, and get the new history's notifications next",
		"position", position, "lost_after", hole.After, "next_seq", hole.First)
	f.hub.StartWindow(position)
	f.hub.Broadcast(hub.Frame{Data: wire.StatusEvent(time.Now(), wire.Status{Replay: wire.ReplayLost, Live: true,
		LastSeq: new(hole.After), NextSeq: new(hole.First)})})
	return nil
}

// deliver hands ns to the hub and sets bad aside, in seq order.
func (f *Feed) deliver(ctx context.Context, ns []notify.Notification, bad []postgres.Undeliverable) {
	for _, n := range ns {
		for len(bad) > 0 && bad[0].Seq < n.Seq {
			f.setAside(ctx, bad[0])
			bad = bad[1:]
		}
		ev := &hub.Event{Frame: hub.Frame{Seq: n.Seq, Created: n.CreatedAt.UnixNano(), Data: wire.NotificationEvent(n)}, Target: n.Target, Module: n.Module, Severity: n.Severity}
		if !n.ExpiresAt.IsZero() {
			ev.ExpiresAt = n.ExpiresAt.UnixNano()
		}
		f.hub.Publish(ev)
		f.position.Store(n.Seq)
	}
	for _, b := range bad {
		f.setAside(ctx, b)
	}
}

// setAside records that a published row cannot be delivered: its queue
// item failed with the reason, a metric, one log line. Nobody receives it,
// live or by replay (notify.visible_to refuses the same rows).
func (f *Feed) setAside(ctx context.Context, b postgres.Undeliverable) {
	reason := "not delivered: " + b.Reason + " (fix the row, set its seq and published_at to NULL, then retry the item)"
	err := f.store.SetAside(ctx, b.NotificationID, reason)
	f.cfg.Logger.WarnContext(ctx, "published notification set aside: it cannot be delivered consistently",
		"seq", b.Seq, "notification_id", b.NotificationID, "reason", b.Reason, "record_err", err)
	if f.cfg.SetAside != nil {
		f.cfg.SetAside()
	}
}
