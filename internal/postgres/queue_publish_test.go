package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

func TestPublish(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx := context.Background()
	db, q := pgtest.NewQueue(t)
	lis := listen(t, ctx, db.URL, "notify_published")

	items := insertNotifications(t, ctx, db.Pool, 10, "publish")
	first, err := q.Claim(ctx, "w", 6)
	if err != nil {
		t.Fatal(err)
	}
	second, err := q.Claim(ctx, "w", 6)
	if err != nil || len(first) != 6 || len(second) != 4 {
		t.Fatalf("claims: %d, %d, %v; want 6 and 4", len(first), len(second), err)
	}
	// The order of the claims passed in does not matter: seqs follow the queue.
	rand.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })

	before := time.Now().Add(-time.Second)
	held, last, _, err := q.Publish(ctx, "w", first)
	if err != nil || held != 6 || last != 6 {
		t.Fatalf("Publish first batch = %d, %d, %v; want 6, 6", held, last, err)
	}
	if n := nextNotification(t, lis, 5*time.Second); n.Channel != "notify_published" || n.Payload != "6" {
		t.Fatalf("notification %s %q, want notify_published \"6\"", n.Channel, n.Payload)
	}
	held, last, _, err = q.Publish(ctx, "w", second)
	if err != nil || held != 4 || last != 10 {
		t.Fatalf("Publish second batch = %d, %d, %v; want 4, 10", held, last, err)
	}
	if n := nextNotification(t, lis, 5*time.Second); n.Payload != "10" {
		t.Fatalf("notification payload %q, want \"10\"", n.Payload)
	}

	for i, id := range items {
		r := readItem(t, ctx, db.Pool, id)
		if r.Seq == nil || *r.Seq != int64(i+1) {
			t.Errorf("item %d (#%d in queue order) has seq %v, want %d", id, i+1, r.Seq, i+1)
		}
		if r.Status != "sent" || r.SentAt == nil || r.SentAt.Before(before) || r.PublishedAt == nil || r.PublishedAt.Before(before) {
			t.Errorf("item %d: %+v, want sent with sent_at and published_at set", id, r)
		}
		if r.LockedBy != nil || r.LockedAt != nil || r.LastError != nil || r.Attempts != 1 {
			t.Errorf("item %d: %+v, want lock and error cleared, attempts 1", id, r)
		}
	}
	var lastSeq int64
	var headAt *time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT last_seq, published_at FROM notify.stream_head`).Scan(&lastSeq, &headAt); err != nil {
		t.Fatal(err)
	}
	if lastSeq != 10 || headAt == nil || headAt.Before(before) {
		t.Fatalf("stream head last_seq %d published_at %v, want 10 and now", lastSeq, headAt)
	}

	t.Run("publishing again changes nothing and does not ring", func(t *testing.T) {
		held, last, _, err := q.Publish(ctx, "w", first)
		if err != nil || held != 0 || last != 0 {
			t.Fatalf("Publish of sent items = %d, %d, %v; want 0, 0", held, last, err)
		}
		held, last, _, err = q.Publish(ctx, "w", nil)
		if err != nil || held != 0 || last != 0 {
			t.Fatalf("Publish of nothing = %d, %d, %v; want 0, 0", held, last, err)
		}
		pgtest.Exec(t, ctx, db.Pool, `NOTIFY notify_published, 'sentinel'`)
		if n := nextNotification(t, lis, 5*time.Second); n.Payload != "sentinel" {
			t.Fatalf("got %q before the sentinel: an empty publish rang", n.Payload)
		}
		if got := pgtest.Scalar[int64](t, ctx, db.Pool, `SELECT last_seq FROM notify.stream_head`); got != 10 {
			t.Fatalf("last_seq %d after empty publishes, want 10", got)
		}
	})
}

// TestPublishSeqOrderIsCommitOrder runs producers, several publishers and
// senders of born-published notifications (notify.send, some holding their
// transaction open a moment after the send) at once while a reader checks
// that the published seqs always form a prefix 1..n: a seq never becomes
// visible before a smaller one, whichever way it was published.
func TestPublishSeqOrderIsCommitOrder(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	db := pgtest.NewQueued(t)
	pool, err := postgres.OpenPool(ctx, db.URL, postgres.PoolConfig{MaxConns: 12, ApplicationName: "notifyd-test-publishers"})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	q := postgres.NewQueue(pool)
	lis := listen(t, ctx, db.URL, "notify_published")

	const producers, txPerProducer, rowsPerTx = 2, 40, 25
	const senders, sendsPerSender = 2, 60
	const total = producers*txPerProducer*rowsPerTx + senders*sendsPerSender
	const publishers = 5

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var producing sync.WaitGroup
	var produced atomic.Bool
	for p := range producers {
		producing.Go(func() {
			for i := range txPerProducer {
				_, err := pool.Exec(ctx, `INSERT INTO notify.notifications (message)
					SELECT 'p' || $1::int || '-' || $2::int || '-' || g FROM generate_series(1, $3::int) g`, p, i, rowsPerTx)
				if err != nil {
					fail(fmt.Errorf("produce: %w", err))
					return
				}
			}
		})
	}
	var mu sync.Mutex
	lastSeqs := map[int64]bool{}
	notes := postgres.NewNotifications(pool)
	for p := range senders {
		producing.Go(func() {
			for i := range sendsPerSender {
				seq, err := sendOne(ctx, pool, notes, fmt.Sprintf("s%d-%d", p, i), i%2 == 0)
				if err != nil {
					fail(fmt.Errorf("send: %w", err))
					return
				}
				if seq > 0 {
					mu.Lock()
					lastSeqs[seq] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() { producing.Wait(); produced.Store(true) })

	for i := range publishers {
		id := fmt.Sprintf("publisher-%d", i)
		wg.Go(func() {
			for ctx.Err() == nil {
				done := produced.Load()
				claims, err := q.Claim(ctx, id, 1+rand.IntN(40))
				if err != nil {
					fail(fmt.Errorf("%s claim: %w", id, err))
					return
				}
				if len(claims) == 0 {
					if done {
						return
					}
					continue
				}
				held, last, _, err := q.Publish(ctx, id, claims)
				if err != nil {
					fail(fmt.Errorf("%s publish: %w", id, err))
					return
				}
				if held != len(claims) {
					fail(fmt.Errorf("%s published %d of its %d claims", id, held, len(claims)))
				}
				mu.Lock()
				lastSeqs[last] = true
				mu.Unlock()
			}
		})
	}

	// The reader: count == max at every instant, and max never goes back.
	publishing := make(chan struct{})
	var reads, gaps atomic.Int64
	var firstGap atomic.Value
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var prevMax int64
		for {
			select {
			case <-publishing:
				return
			default:
			}
			var maxSeq, count int64
			err := pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0), count(*) FROM notify.notifications WHERE seq IS NOT NULL`).Scan(&maxSeq, &count)
			if err != nil {
				fail(fmt.Errorf("reader: %w", err))
				return
			}
			reads.Add(1)
			if count != maxSeq || maxSeq < prevMax {
				gaps.Add(1)
				firstGap.CompareAndSwap(nil, fmt.Sprintf("saw max %d with count %d (previous max %d)", maxSeq, count, prevMax))
			}
			prevMax = maxSeq
		}
	}()

	// Every publish rang with its last seq; collect the payloads.
	var payloadMu sync.Mutex
	payloads := map[int64]bool{}
	lctx, stopListening := context.WithCancel(ctx)
	listenerDone := make(chan struct{})
	go func() {
		defer close(listenerDone)
		for {
			n, err := lis.WaitForNotification(lctx)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					fail(fmt.Errorf("listener: %w", err))
				}
				return
			}
			seq, err := strconv.ParseInt(n.Payload, 10, 64)
			if err != nil {
				fail(fmt.Errorf("payload %q: %w", n.Payload, err))
				continue
			}
			payloadMu.Lock()
			payloads[seq] = true
			payloadMu.Unlock()
		}
	}()

	wg.Wait()
	close(publishing)
	<-readerDone
	mu.Lock()
	wantPayloads := len(lastSeqs)
	mu.Unlock()
	testkit.Eventually(t, 10*time.Second, "a notify_published per publish", func() bool {
		payloadMu.Lock()
		defer payloadMu.Unlock()
		return len(payloads) >= wantPayloads
	})
	stopListening()
	<-listenerDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d notifications, %d publishes, %d reads while publishing", total, wantPayloads, reads.Load())
	if gaps.Load() > 0 {
		t.Fatalf("%d of %d reads saw a gap in the published seqs; first: %v", gaps.Load(), reads.Load(), firstGap.Load())
	}
	if reads.Load() < 10 {
		t.Errorf("only %d reads happened while publishing; the check proved little", reads.Load())
	}
	for s := range lastSeqs {
		if !payloads[s] {
			t.Errorf("publish ending at seq %d did not ring notify_published", s)
		}
	}

	var count, distinct, maxSeq, head, unsent int64
	err = pool.QueryRow(ctx, `SELECT count(seq), count(DISTINCT seq), coalesce(max(seq), 0),
			(SELECT last_seq FROM notify.stream_head),
			(SELECT count(*) FROM notify.queue_items WHERE status <> 'sent')
		FROM notify.notifications`).Scan(&count, &distinct, &maxSeq, &head, &unsent)
	if err != nil {
		t.Fatal(err)
	}
	if count != total || distinct != total || maxSeq != total || head != total || unsent != 0 {
		t.Fatalf("seqs: count %d distinct %d max %d head %d, unsent items %d; want %d, %d, %d, %d, 0",
			count, distinct, maxSeq, head, unsent, total, total, total, total)
	}
}

// sendOne sends one notification and returns the seq it was born with:
// through Notifications.Send (0 when the turn was busy and it was queued
// for the publishers instead), or with SELECT notify.send(...) in a
// transaction that waits a moment before it commits (holding the publish
// turn, which every other publisher must then wait for).
func sendOne(ctx context.Context, pool *pgxpool.Pool, notes *postgres.Notifications, message string, inTx bool) (int64, error) {
	if !inTx {
		n, created, err := notes.Send(ctx, notify.Notification{Message: message})
		if err == nil && !created {
			err = fmt.Errorf("sent %q: not created", message)
		}
		return n.Seq, err
	}
	var seq int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT (notification).seq FROM notify.send($1)`, message).Scan(&seq); err != nil {
			return err
		}
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		return nil
	})
	return seq, err
}
