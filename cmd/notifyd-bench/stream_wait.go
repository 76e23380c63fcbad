package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// isEOF reports whether err is the server ending the stream cleanly.
func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

// fail records why the reader stopped (the first reason).
func (r *reader) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// Err is why the reader stopped early (nil while it is healthy).
func (r *reader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Count is how many notifications have been delivered so far.
func (r *reader) Count() int64 { return r.count.Load() }

// Deliveries returns a copy of everything delivered so far, in the order
// the stream delivered it.
func (r *reader) Deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// CloseReasons lists why the server closed the stream, once per close.
func (r *reader) CloseReasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reasons)
}

// Close ends the stream and waits for the reading goroutine.
func (r *reader) Close() {
	r.cancel()
	<-r.done
}

// WaitFor waits until n notifications have been delivered. It gives up
// after timeout, or earlier when nothing at all arrives for stall, which
// tells a lost notification from a slow pipeline without waiting the full
// timeout.
func (r *reader) WaitFor(ctx context.Context, n int64, timeout, stall time.Duration) error {
	deadline := time.Now().Add(timeout)
	last, lastChange := r.Count(), time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		c := r.Count()
		switch {
		case c >= n:
			return nil
		case r.Err() != nil:
			return fmt.Errorf("stream failed after %d of %d notifications: %w", c, n, r.Err())
		case time.Now().After(deadline):
			return fmt.Errorf("received %d of %d notifications within %s", c, n, timeout)
		}
		if c != last {
			last, lastChange = c, time.Now()
		} else if time.Since(lastChange) > stall {
			return fmt.Errorf("received %d of %d notifications; nothing more for %s", c, n, stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Reconnects is how many times the stream was reopened after the server
// closed it.
func (r *reader) Reconnects() int64 { return int64(r.r.Stats().Drops) }
