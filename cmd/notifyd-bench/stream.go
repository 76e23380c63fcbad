package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/sseclient"
)

// delivery is one notification as a stream delivered it, stamped when its
// event was read off the connection (before decoding).
type delivery struct {
	Seq int64
	ID  string
	At  time.Time
}

// wireMessage is the part of a stream message the bench checks.
type wireMessage struct {
	Type           string `json:"type"`
	NotificationID string `json:"notificationId"`
	Data           struct {
		Seq     int64  `json:"seq"`
		Closing string `json:"closing"`
	} `json:"data"`
}

// reader consumes one user's stream in the background, as a well-behaved
// client would: if the server closes it (for instance as "slow", when the
// client fell behind), it reconnects with Last-Event-ID and the server
// replays what it missed. Reconnects are counted and reported, since they
// are part of what the figures measured.
type reader struct {
	e      *env
	token  string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	got     []delivery
	reasons []string // why the server closed the stream, each time
	err     error    // a malformed event, or a reconnect that kept failing

	count      atomic.Int64
	reconnects atomic.Int64
	lastSeq    int64 // owned by the reading goroutine
}

// openReader opens a stream for sub and returns once the server has sent
// "connected": from then on the stream is subscribed and misses nothing.
func openReader(ctx context.Context, e *env, sub string) (*reader, error) {
	tok, err := e.token(sub)
	if err != nil {
		return nil, fmt.Errorf("sign token: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &reader{e: e, token: tok, ctx: rctx, cancel: cancel, done: make(chan struct{}), got: make([]delivery, 0, 1024)}
	s, err := r.open()
	if err != nil {
		cancel()
		return nil, err
	}
	go r.run(s)
	return r, nil
}

// open connects (resuming after lastSeq when it is set) and reads up to
// the "connected" message.
func (r *reader) open() (*sseclient.Stream, error) {
	h := http.Header{"Authorization": {"Bearer " + r.token}}
	if r.lastSeq > 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(r.lastSeq, 10))
	}
	s, err := sseclient.Open(r.ctx, r.e.client, r.e.app.URL()+"/api/notifications/ws", h)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	ev, err := s.Next()
	var m wireMessage
	if err == nil {
		err = json.Unmarshal(ev.Data, &m)
	}
	if err != nil || m.Type != "connected" {
		s.Close()
		return nil, fmt.Errorf("open stream: first message %q (err %v), want connected", ev.Data, err)
	}
	return s, nil
}

func (r *reader) run(s *sseclient.Stream) {
	defer close(r.done)
	for {
		err := r.consume(s)
		s.Close()
		if r.ctx.Err() != nil {
			return
		}
		if err != nil && !isEOF(err) {
			r.fail(err)
			return
		}
		r.reconnects.Add(1)
		delay := 10 * time.Millisecond
		for s, err = r.open(); err != nil; s, err = r.open() {
			if r.ctx.Err() != nil {
				return
			}
			if delay > 5*time.Second {
				r.fail(fmt.Errorf("reconnect: %w", err))
				return
			}
			time.Sleep(delay)
			delay *= 2
		}
	}
}

// consume reads events until the stream ends.
func (r *reader) consume(s *sseclient.Stream) error {
	for {
		ev, err := s.Next()
		if err != nil {
			return err
		}
		at := time.Now()
		var m wireMessage
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			return fmt.Errorf("decode event %q: %w", ev.Data, err)
		}
		if ev.ID == "" {
			if m.Type == "status" && m.Data.Closing != "" {
				r.mu.Lock()
				r.reasons = append(r.reasons, m.Data.Closing)
				r.mu.Unlock()
			}
			continue
		}
		seq, err := strconv.ParseInt(ev.ID, 10, 64)
		if err != nil || m.Type != "notification" || m.NotificationID == "" || m.Data.Seq != seq {
			return fmt.Errorf("malformed notification event: id %q, data %q", ev.ID, ev.Data)
		}
		r.lastSeq = seq
		r.mu.Lock()
		r.got = append(r.got, delivery{Seq: seq, ID: m.NotificationID, At: at})
		r.mu.Unlock()
		r.count.Add(1)
	}
}
