package feed_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/feed"
	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

var alice = notify.Identity{UserID: "alice", Roles: []string{"USER"}}

// node is one process's feed into its hub, with a subscriber for alice.
type node struct {
	hub  *hub.Hub
	feed *feed.Feed
	sub  *hub.Subscriber
}

// startNode starts a feed over store, which reads only when woken once
// run has started it.
func startNode(t *testing.T, store *postgres.Notifications) *node {
	t.Helper()
	h := hub.New(hub.Config{MaxPending: 100_000})
	f := feed.New(store, h, feed.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: time.Hour})
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe(alice)
	if err != nil {
		t.Fatal(err)
	}
	return &node{hub: h, feed: f, sub: sub}
}

// run starts the feed's reads.
func (n *node) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = n.feed.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// frames takes what the subscriber holds until it has want frames, or fails.
func (n *node) frames(t *testing.T, want int) []hub.Frame {
	t.Helper()
	var got []hub.Frame
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("got %d frames (%v), want %d", len(got), seqsOf(got), want)
		}
		got = append(got, n.sub.Take(nil)...)
		time.Sleep(time.Millisecond)
	}
	return got
}

func seqsOf(fs []hub.Frame) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.Seq
	}
	return out
}

// caughtUp wakes the feed and waits until it has read past seq.
func (n *node) caughtUp(t *testing.T, seq int64) {
	t.Helper()
	n.feed.Wake()
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("the feed reads past seq %d", seq), func() bool { return n.feed.Position() >= seq })
}

// send sends msg to alice born published, or queued when another publisher
// holds the publish turn (Seq 0).
func send(store *postgres.Notifications, msg string) (notify.Notification, error) {
	n, created, err := store.Send(context.Background(), notify.Notification{Target: notify.Target{UserID: alice.UserID},
		Message: msg, Module: "orders", Data: []byte(`{"order": 7}`), Actions: []notify.Action{{ID: "open", Label: "Open", URL: "/orders/7"}}})
	if err == nil && !created {
		err = fmt.Errorf("send %q: not created", msg)
	}
	return n, err
}

func mustSend(t *testing.T, store *postgres.Notifications, msg string) notify.Notification {
	t.Helper()
	n, err := send(store, msg)
	if err != nil || n.Seq == 0 {
		t.Fatalf("send %q: seq %d, err %v", msg, n.Seq, err)
	}
	return n
}

// An offered notification reaches the hub at once when it is the next seq,
// with the bytes the feed's read would have brought; one that is not next
// waits for the read; the read never hands either on twice.
func TestOfferHandsOnTheNextSeqOnce(t *testing.T) {
	db := pgtest.NewQueued(t)
	store := postgres.NewNotifications(db.Pool)
	offering, reading := startNode(t, store), startNode(t, store)
	reading.run(t)
	ctx := context.Background()

	first, second, third := mustSend(t, store, "first"), mustSend(t, store, "second"), mustSend(t, store, "third")
	if !offering.feed.Offer(ctx, first) {
		t.Fatal("Offer of the next seq: not handed on")
	}
	if got := offering.sub.Take(nil); len(got) != 1 || got[0].Seq != first.Seq {
		t.Fatalf("right after Offer the hub holds %v, want [%d]", seqsOf(got), first.Seq)
	}
	if offering.feed.Offer(ctx, third) {
		t.Fatal("Offer of a seq after a gap: handed on before the seq below it")
	}
	if !offering.feed.Offer(ctx, second) {
		t.Fatal("Offer of the next seq after another was refused: not handed on")
	}
	offering.run(t)
	offering.caughtUp(t, third.Seq)
	offering.feed.Wake() // one more read past what Offer handed on
	want := fmt.Sprint([]int64{second.Seq, third.Seq})
	if got := fmt.Sprint(seqsOf(offering.frames(t, 2))); got != want {
		t.Fatalf("offering node's hub got %s after the first, want %s", got, want)
	}
	time.Sleep(50 * time.Millisecond)
	if extra := offering.sub.Take(nil); len(extra) > 0 {
		t.Fatalf("the feed's read handed on again %v", seqsOf(extra))
	}

	// The bytes a stream writes are the same either way.
	reading.caughtUp(t, third.Seq)
	read := reading.frames(t, 3)
	fourth := mustSend(t, store, "fourth")
	if !offering.feed.Offer(ctx, fourth) {
		t.Fatal("Offer after the feed's reads: not handed on")
	}
	reading.caughtUp(t, fourth.Seq)
	read = append(read, reading.frames(t, 1)...)
	offered := offering.frames(t, 1)[0]
	if last := read[3]; !bytes.Equal(offered.Data, last.Data) || offered.Created != last.Created || offered.Seq != last.Seq {
		t.Fatalf("offered frame differs from the read one:\n%s\n%s", offered.Data, last.Data)
	}
}

// A worker's batch offered whole: it reaches the hub at once, in order,
// with the bytes the feed's read brings; offered again, or with a gap, it
// is not handed on; the publish's own ring then needs no read, while a
// ring past the position or without a seq reads.
func TestOfferOfAWorkersBatch(t *testing.T) {
	db := pgtest.NewQueued(t)
	store, queue := postgres.NewNotifications(db.Pool), postgres.NewQueue(db.Pool)
	offering, reading := startNode(t, store), startNode(t, store)
	reading.run(t)
	ctx := context.Background()
	publish := func(messages ...string) []notify.Notification {
		t.Helper()
		for _, m := range messages {
			pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message, target_user_id, data) VALUES ($1, 'alice', '{"k": [1, "é"]}')`, m)
		}
		b, err := queue.ClaimAndPublish(ctx, 100, time.Hour)
		if err != nil || len(b.Published) != len(messages) {
			t.Fatalf("publish %q: %d published, %v", messages, len(b.Published), err)
		}
		return b.Published
	}

	batch := publish("one", "two", "three")
	if !offering.feed.Offer(ctx, batch...) {
		t.Fatal("Offer of a batch right after the position: not handed on")
	}
	offered := offering.sub.Take(nil)
	if got, want := fmt.Sprint(seqsOf(offered)), fmt.Sprint([]int64{batch[0].Seq, batch[1].Seq, batch[2].Seq}); got != want {
		t.Fatalf("right after Offer the hub holds %s, want %s", got, want)
	}
	reading.caughtUp(t, batch[2].Seq)
	read := reading.frames(t, 3)
	for i := range read {
		if !bytes.Equal(offered[i].Data, read[i].Data) || offered[i].Created != read[i].Created {
			t.Fatalf("offered frame %d differs from the read one:\n%s\n%s", offered[i].Seq, offered[i].Data, read[i].Data)
		}
	}
	if offering.feed.Offer(ctx, batch...) {
		t.Fatal("the same batch offered again: handed on twice")
	}
	gapped := publish("four", "five", "six")
	if offering.feed.Offer(ctx, gapped[0], gapped[2]) {
		t.Fatal("a batch with a gap: handed on")
	}

	var reads atomic.Int64
	offering.feed.SetAfterRead(func() { reads.Add(1) })
	offering.run(t)
	offering.caughtUp(t, gapped[2].Seq) // the gapped batch, read
	if got := seqsOf(offering.frames(t, 3)); fmt.Sprint(got) != fmt.Sprint([]int64{gapped[0].Seq, gapped[1].Seq, gapped[2].Seq}) {
		t.Fatalf("after the gapped offer the hub got %v", got)
	}
	last := publish("seven", "eight")
	if !offering.feed.Offer(ctx, last...) {
		t.Fatal("Offer after the feed's reads: not handed on")
	}
	before := reads.Load()
	offering.feed.Rung(fmt.Sprint(last[1].Seq))
	offering.feed.Rung(fmt.Sprint(last[0].Seq))
	time.Sleep(200 * time.Millisecond)
	if n := reads.Load() - before; n != 0 {
		t.Fatalf("rings for seqs already handed on: %d reads, want none", n)
	}
	for _, payload := range []string{fmt.Sprint(last[1].Seq + 1), "", "not a seq"} {
		before := reads.Load()
		offering.feed.Rung(payload)
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("a read after a ring %q", payload), func() bool { return reads.Load() > before })
	}
	if got := seqsOf(offering.sub.Take(nil)); len(got) != 2 || got[0] != last[0].Seq || got[1] != last[1].Seq {
		t.Fatalf("hub got %v after the last offer and the rings, want [%d %d] once", got, last[0].Seq, last[1].Seq)
	}
}

// A worker's batches given to OfferLater reach the hub through the feed's
// own goroutine, in order, once each, without a read.
func TestOfferLaterHandsOnWithoutARead(t *testing.T) {
	db := pgtest.NewQueued(t)
	store, queue := postgres.NewNotifications(db.Pool), postgres.NewQueue(db.Pool)
	n, reads := startCountingReads(t, store)
	ctx := context.Background()
	var want []int64
	for i := range 10 {
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message, target_user_id)
			SELECT $1 || '-' || g, 'alice' FROM generate_series(1, 3) g`, fmt.Sprint("batch ", i))
		b, err := queue.ClaimAndPublish(ctx, 100, time.Hour)
		if err != nil || len(b.Published) != 3 {
			t.Fatalf("publish batch %d: %d published, %v", i, len(b.Published), err)
		}
		for _, m := range b.Published {
			want = append(want, m.Seq)
		}
		n.feed.OfferLater(b.Published)
	}
	if got := fmt.Sprint(seqsOf(n.frames(t, len(want)))); got != fmt.Sprint(want) {
		t.Fatalf("hub got %s, want %v", got, want)
	}
	time.Sleep(50 * time.Millisecond)
	if extra := n.sub.Take(nil); len(extra) > 0 {
		t.Fatalf("handed on again: %v", seqsOf(extra))
	}
	if r := reads.Load(); r != 1 {
		t.Fatalf("the feed read %d times, want only its first read", r)
	}
}

// A worker's small batch is handed on in the worker's goroutine, at once; a
// large one by the feed's goroutine, once it runs (OfferLater), once.
func TestOfferBatchSmallAtOnceLargeLater(t *testing.T) {
	db := pgtest.NewQueued(t)
	store, queue := postgres.NewNotifications(db.Pool), postgres.NewQueue(db.Pool)
	n := startNode(t, store)
	ctx := context.Background()
	publish := func(count int) []notify.Notification {
		t.Helper()
		pgtest.Exec(t, ctx, db.Pool, `INSERT INTO notify.notifications (message, target_user_id)
			SELECT 'm' || g, 'alice' FROM generate_series(1, $1::int) g`, count)
		b, err := queue.ClaimAndPublish(ctx, 100, time.Hour)
		if err != nil || len(b.Published) != count {
			t.Fatalf("publish %d: %d published, %v", count, len(b.Published), err)
		}
		return b.Published
	}
	small := publish(2)
	n.feed.OfferBatch(ctx, small)
	if got := n.sub.Take(nil); len(got) != 2 || got[1].Seq != small[1].Seq {
		t.Fatalf("right after a small batch the hub holds %v, want its 2", seqsOf(got))
	}
	large := publish(40)
	n.feed.OfferBatch(ctx, large)
	if got := n.sub.Take(nil); len(got) != 0 {
		t.Fatalf("a large batch was handed on in the caller's goroutine: %v", seqsOf(got))
	}
	n.run(t)
	if got := seqsOf(n.frames(t, 40)); got[0] != large[0].Seq || got[39] != large[39].Seq {
		t.Fatalf("the feed handed on %v, want seqs %d..%d", got, large[0].Seq, large[39].Seq)
	}
	time.Sleep(50 * time.Millisecond)
	if extra := n.sub.Take(nil); len(extra) > 0 {
		t.Fatalf("handed on again: %v", seqsOf(extra))
	}
}

// An Offer that comes after the feed's read brought the same seq, but
// before the read is handed on: the read skips it.
func TestOfferBetweenAReadAndItsHandingOn(t *testing.T) {
	db := pgtest.NewQueued(t)
	store := postgres.NewNotifications(db.Pool)
	n := startNode(t, store)
	sent := mustSend(t, store, "offered while read")
	var tried, offered atomic.Bool
	n.feed.SetAfterRead(func() {
		if !tried.Swap(true) {
			offered.Store(n.feed.Offer(context.Background(), sent))
		}
	})
	n.run(t)
	n.caughtUp(t, sent.Seq)
	if !offered.Load() {
		t.Fatal("Offer between the read and its handing on: not handed on")
	}
	if got := seqsOf(n.frames(t, 1)); len(got) != 1 || got[0] != sent.Seq {
		t.Fatalf("hub got %v, want [%d]", got, sent.Seq)
	}
	time.Sleep(50 * time.Millisecond)
	if extra := n.sub.Take(nil); len(extra) > 0 {
		t.Fatalf("the read handed on again: %v", seqsOf(extra))
	}
}

// Publishers offering while the feed reads, some of their notifications
// queued for a worker that offers its batches too: every seq reaches the
// hub once, in order.
func TestOffersRacingTheFeed(t *testing.T) {
	db := pgtest.NewQueued(t)
	store, queue := postgres.NewNotifications(db.Pool), postgres.NewQueue(db.Pool)
	n := startNode(t, store)
	n.run(t)
	const publishers, each = 4, 50
	done := make(chan struct{})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				sent, err := send(store, fmt.Sprintf("p%d-%d", p, i))
				if err != nil {
					t.Error(err)
					return
				}
				n.feed.Wake() // as the NOTIFY would: reads race the offers
				if sent.Seq > 0 {
					n.feed.Offer(context.Background(), sent)
				}
			}
		})
	}
	// A worker publishes the queued ones meanwhile and offers its batches.
	published := make(chan struct{})
	go func() {
		defer close(published)
		for sending := true; ; {
			b, err := queue.ClaimAndPublish(context.Background(), 7, time.Hour)
			if err != nil {
				t.Error(err)
				return
			}
			n.feed.Offer(context.Background(), b.Published...)
			if b.Items == 0 && !sending {
				return
			}
			if b.Items == 0 {
				time.Sleep(time.Millisecond)
			}
			select {
			case <-done:
				sending = false
			default:
			}
		}
	}()
	wg.Wait()
	close(done)
	<-published
	head, err := store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n.caughtUp(t, head.LastSeq)
	got := seqsOf(n.frames(t, publishers*each))
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("seq %d after %d: out of order or twice (%v)", got[i], got[i-1], got)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if extra := n.sub.Take(nil); len(extra) > 0 {
		t.Fatalf("handed on again: %v", seqsOf(extra))
	}
}

// A ring heard with a connection at hand (RungReading): the notifications
// it announces are read on that connection and handed on at once, in
// order, once, without the feed's own read; a ring for what was handed on
// reads nothing; a read that fails leaves them to the feed's read.
func TestRungReadingHandsOnWithoutTheFeedsRead(t *testing.T) {
	db := pgtest.NewQueued(t)
	store := postgres.NewNotifications(db.Pool)
	n, reads := startCountingReads(t, store)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var onConn atomic.Int64
	read := func(ctx context.Context, after int64, limit int) ([]notify.Notification, bool, error) {
		onConn.Add(1)
		ns, bad, _, err := postgres.PublishedOn(ctx, conn, after, limit)
		return ns, len(bad) == 0, err
	}

	first, second := mustSend(t, store, "first"), mustSend(t, store, "second")
	n.feed.RungReading(ctx, fmt.Sprint(second.Seq), read)
	if got := fmt.Sprint(seqsOf(n.sub.Take(nil))); got != fmt.Sprint([]int64{first.Seq, second.Seq}) {
		t.Fatalf("right after the ring the hub holds %s, want [%d %d]", got, first.Seq, second.Seq)
	}
	n.feed.RungReading(ctx, fmt.Sprint(second.Seq), read)
	time.Sleep(50 * time.Millisecond)
	if extra := n.sub.Take(nil); len(extra) > 0 {
		t.Fatalf("handed on again: %v", seqsOf(extra))
	}
	if r, c := reads.Load(), onConn.Load(); r != 1 || c != 1 {
		t.Fatalf("the feed read %d times and the ring's reader %d; want only the feed's first read and one on the connection", r, c)
	}

	third := mustSend(t, store, "third")
	n.feed.RungReading(ctx, fmt.Sprint(third.Seq), func(context.Context, int64, int) ([]notify.Notification, bool, error) {
		return nil, false, errors.New("connection gone")
	})
	if got := seqsOf(n.frames(t, 1)); len(got) != 1 || got[0] != third.Seq {
		t.Fatalf("after a failed read the hub got %v, want [%d] by the feed's read", got, third.Seq)
	}
	if r := reads.Load(); r < 2 {
		t.Fatalf("the feed read %d times, want its own read of the third", r)
	}
}

// startCountingReads starts a node whose feed counts its reads, and returns
// once the feed's first read (from its start) is done.
func startCountingReads(t *testing.T, store *postgres.Notifications) (*node, *atomic.Int64) {
	t.Helper()
	n := startNode(t, store)
	reads := new(atomic.Int64)
	n.feed.SetAfterRead(func() { reads.Add(1) })
	n.run(t)
	testkit.Eventually(t, 10*time.Second, "the feed's first read", func() bool { return reads.Load() == 1 })
	return n, reads
}
