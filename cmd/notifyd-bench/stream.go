package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/wire"
)

// delivery is one notification as a stream delivered it, stamped when its
// event was read off the connection (before decoding). The bench keeps
// its seq, id and time only (Event is left empty).
type delivery = wire.Delivery

// reconnectAttempts is how many failed attempts in a row make the reader
// give up (the backoff has reached seconds by then).
const reconnectAttempts = 10

// reader consumes one user's stream in the background, as a well-behaved
// client would: if the server closes it (for instance as "slow", when the
// client fell behind), it reconnects with Last-Event-ID and the server
// replays what it missed. Reconnects are counted and reported, since they
// are part of what the figures measured.
type reader struct {
	r      *wire.Reader
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	got     []delivery
	reasons []string // why the server closed the stream, each time
	err     error    // a malformed event, or a reconnect that kept failing

	count atomic.Int64
}

// openReader opens a stream for sub and returns once the server has sent
// "connected": from then on the stream is subscribed and misses nothing.
func openReader(ctx context.Context, e *env, sub string) (*reader, error) {
	tok, err := e.token(sub)
	if err != nil {
		return nil, fmt.Errorf("sign token: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	rd := &reader{cancel: cancel, done: make(chan struct{}), got: make([]delivery, 0, 1024)}
	rd.r = wire.NewReader(wire.ReaderConfig{
		Client:         e.client,
		URL:            func() string { return e.app.URL() + "/api/notifications/ws" },
		Header:         http.Header{"Authorization": {"Bearer " + tok}},
		From:           -1,
		MaxBackoff:     5 * time.Second,
		OnNotification: rd.deliver,
		OnMessage:      rd.message,
		OnMalformed:    func(err error) error { return err },
		OnRetry:        rd.retry,
	})
	failed := make(chan error, 1)
	go func() {
		defer close(rd.done)
		if err := rd.r.Run(rctx); err != nil {
			rd.fail(err)
			failed <- err
		}
	}()
	select {
	case <-rd.r.Connected():
		return rd, nil
	case err := <-failed:
		cancel()
		return nil, err
	}
}

func (rd *reader) deliver(d wire.Delivery) error {
	d.Event = wire.Event{}
	rd.mu.Lock()
	rd.got = append(rd.got, d)
	rd.mu.Unlock()
	rd.count.Add(1)
	return nil
}

func (rd *reader) message(m wire.Received) error {
	if m.Type != wire.TypeStatus {
		return nil
	}
	if st, _ := m.Status(); st.Closing != "" {
		rd.mu.Lock()
		rd.reasons = append(rd.reasons, st.Closing)
		rd.mu.Unlock()
	}
	return nil
}

// retry gives up when the first connection fails, when a connection ends
// with anything but the server closing it, or after reconnectAttempts
// failed attempts.
func (rd *reader) retry(rt wire.Retry) error {
	switch {
	case rd.r.Stats().Connects == 0:
		return fmt.Errorf("open stream: %w", rt.Err)
	case rt.Failures == 0 && !errors.Is(rt.Err, wire.ErrEnded) && !isEOF(rt.Err):
		return rt.Err
	case rt.Failures >= reconnectAttempts:
		return fmt.Errorf("reconnect: %w", rt.Err)
	}
	return nil
}
