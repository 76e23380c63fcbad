package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// The reader's connections: Run's loop of sessions, the backoff between
// them, and the opening of each up to its connected message.

// stopError is an error of a callback, which ends Run.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// Run connects and reads until ctx ends (it returns nil then) or a callback
// returns an error (it returns that error).
func (r *Reader) Run(ctx context.Context) error {
	failures := 0
	for {
		worked, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if stop, ok := errors.AsType[stopError](err); ok {
			return stop.err
		}
		if worked {
			failures = 0
		} else {
			failures++
		}
		wait := r.backoff(failures)
		if r.cfg.OnRetry != nil {
			if err := r.cfg.OnRetry(Retry{Err: err, Failures: failures, Wait: wait}); err != nil {
				return err
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// backoff is the wait before the next attempt, after failures failed ones.
func (r *Reader) backoff(failures int) time.Duration {
	base, steps := r.cfg.MinBackoff, failures
	if r.cfg.UseRetryField {
		steps++ // a connection that ended waits too
		r.mu.Lock()
		if r.retry > 0 {
			base = r.retry
		}
		r.mu.Unlock()
	}
	if steps == 0 {
		return 0
	}
	d := base
	for i := 1; i < steps && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// session opens one connection and reads it until it ends. worked reports
// whether it got its connected message.
func (r *Reader) session(ctx context.Context) (worked bool, err error) {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.idled.Store(false)
	reset := func() {}
	if r.cfg.Idle > 0 {
		idle := time.AfterFunc(r.idleTimeout(), func() { r.idled.Store(true); cancel() })
		defer idle.Stop()
		reset = func() { idle.Reset(r.idleTimeout()) }
	}
	s, err := r.open(connCtx, cancel)
	if err != nil {
		if ctx.Err() == nil { // not the reader stopping
			r.mu.Lock()
			r.stats.ConnectErrors++
			if r.stats.ConnectFailures == nil {
				r.stats.ConnectFailures = map[string]int{}
			}
			r.stats.ConnectFailures[FailureKind(err)]++
			r.mu.Unlock()
		}
		return false, r.why(err)
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err == nil {
			err = r.handle(ev, s.Retry())
		}
		if err != nil {
			r.ended(ctx.Err() != nil)
			return true, r.why(err)
		}
		reset()
	}
}

// open connects with the resume point and reads up to the connected
// message; abort is what Reconnect calls to end the connection.
func (r *Reader) open(ctx context.Context, abort context.CancelFunc) (*Stream, error) {
	r.mu.Lock()
	r.reconnect = false
	last := r.last
	r.mu.Unlock()
	h := r.cfg.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if last >= 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	s, err := Open(ctx, r.cfg.Client, r.cfg.URL(), h)
	if err != nil {
		return nil, err
	}
	ev, err := s.Next()
	var m Received
	if err == nil {
		m, err = Decode(ev)
	}
	if err == nil && m.Type != TypeConnected {
		err = fmt.Errorf("first message %.200q, want connected", ev.Data)
	}
	var c Connected
	if err == nil {
		c, err = m.Connected()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open stream: %w", err)
	}
	m.Retry = s.Retry()
	r.mu.Lock()
	r.abort = abort  // cancelling the request ends a blocked read safely
	if r.reconnect { // Reconnect was asked while connecting
		abort()
	}
	r.retry = s.Retry()
	r.heartbeat = time.Duration(c.HeartbeatInterval) * time.Millisecond
	r.stats.Open = true
	r.stats.Connects++
	r.beatPrev = time.Now()
	r.mu.Unlock()
	r.once.Do(func() { close(r.connected) })
	if r.cfg.OnMessage != nil {
		if err := r.cfg.OnMessage(m); err != nil {
			s.Close()
			return nil, stopError{err}
		}
	}
	return s, nil
}

// ended counts the end of a connection: a resume when Reconnect asked for
// it, a drop unless the reader is stopping.
func (r *Reader) ended(stopping bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Open, r.abort = false, nil
	switch {
	case stopping:
	case r.reconnect:
		r.stats.Resumes++
	default:
		r.stats.Drops++
	}
}

// why is the error to report for a connection that ended with err.
func (r *Reader) why(err error) error {
	switch {
	case r.idled.Load():
		return fmt.Errorf("no data for %s (not even a heartbeat)", r.idleTimeout())
	case errors.Is(err, io.EOF):
		return ErrEnded
	}
	return err
}

func (r *Reader) idleTimeout() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idleTimeoutLocked()
}

func (r *Reader) idleTimeoutLocked() time.Duration {
	if r.heartbeat > 0 {
		return 3*r.heartbeat + 5*time.Second
	}
	return r.cfg.Idle
}
