package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/sseclient"
	"github.com/notifyd/notifyd/internal/stream"
)

// Reconnect delays of tail --url: the server's retry hint (or
// tailMinBackoff) after a stream that worked, doubling with each failed
// attempt up to tailMaxBackoff, each with jitter.
const (
	tailMinBackoff = time.Second
	tailMaxBackoff = 30 * time.Second
	// tailIdle is how long a stream may stay silent before it is presumed
	// dead, until the connected message gives the heartbeat interval.
	tailIdle = time.Minute
)

// tailURL reads one user's stream over HTTP until ctx ends, --count is
// reached, or the server refuses the request in a way retrying cannot fix.
func tailURL(ctx context.Context, c *common, o tailOptions, out *tailPrinter, stderr io.Writer) error {
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	endpoint, err := streamURL(o.url)
	if err != nil {
		return err
	}
	t := &httpTail{endpoint: endpoint, token: strings.TrimSpace(strings.TrimPrefix(o.token, "Bearer ")),
		last: o.from, out: out, log: log, stderr: stderr, client: &http.Client{}}
	failures := 0
	for {
		err := t.session(ctx)
		if ctx.Err() != nil || errors.Is(err, errTailDone) {
			return err
		}
		if fatal := t.fatal(err); fatal != nil {
			return fatal
		}
		if t.connected {
			failures, t.everConnected = 0, true
		}
		failures++
		base := tailMinBackoff
		if t.retryHint > 0 {
			base = t.retryHint
		}
		d := base
		for i := 1; i < failures && d < tailMaxBackoff; i++ {
			d *= 2
		}
		d = min(d, tailMaxBackoff)
		d = d/2 + rand.N(d/2+1)
		msg, attrs := "stream interrupted; reconnecting", []any{"err", err, "retry_in", d.Round(time.Millisecond)}
		if !t.everConnected {
			msg = "cannot open the stream; retrying (check --url and that notifyd is running there)"
		}
		if t.last >= 0 {
			attrs = append(attrs, "resume_after_seq", t.last)
		}
		log.WarnContext(ctx, msg, attrs...)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// streamURL is the stream endpoint for a base URL (or the endpoint itself).
func streamURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageError{fmt.Sprintf("--url %q: want the server's address with its scheme, e.g. http://127.0.0.1:8080", raw)}
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/api/notifications/ws"
	}
	return u.String(), nil
}

// httpTail is the state of tail --url across reconnects.
type httpTail struct {
	endpoint, token string
	last            int64 // last seq printed; -1: none yet, no resume point
	out             *tailPrinter
	log             *slog.Logger
	stderr          io.Writer
	client          *http.Client
	connected       bool // the last session got its connected message
	everConnected   bool
	retryHint       time.Duration // the server's retry: field
	heartbeat       time.Duration // from the connected message
	probing         bool          // asked for "ahead" to learn the newest seq
}

// fatal returns the error to stop with when retrying cannot help.
func (t *httpTail) fatal(err error) error {
	var se *sseclient.StatusError
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Status {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s refused the token (401 %s): it may be expired or from another issuer; get a new one (for a development server: notifyd dev-token --sub ID) and pass it with --token or NOTIFY_TOKEN", t.endpoint, se.Body)
	case http.StatusForbidden:
		return fmt.Errorf("%s refused this user (403 %s)", t.endpoint, se.Body)
	case http.StatusBadRequest:
		return fmt.Errorf("%s refused the request (400 %s)", t.endpoint, se.Body)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return fmt.Errorf("%s is not a notifyd stream (%d): give the server's base URL, e.g. http://127.0.0.1:8080", t.endpoint, se.Status)
	}
	return nil
}

// session reads one connection until it ends. It returns errTailDone when
// --count is reached.
func (t *httpTail) session(ctx context.Context) error {
	t.connected = false
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+t.token)
	if id := t.resumeFrom(); id != "" {
		h.Set("Last-Event-ID", id)
	}
	s, err := sseclient.Open(ctx, t.client, t.endpoint, h)
	if err != nil {
		return err
	}
	defer s.Close()
	// A silent stream is a dead one (a half-open connection): the server
	// sends heartbeats, so silence for a few of them means reconnect.
	var idled atomic.Bool
	idle := time.AfterFunc(t.idleTimeout(), func() { idled.Store(true); cancel() })
	defer idle.Stop()
	for {
		ev, err := s.Next()
		if s.Retry > 0 {
			t.retryHint = time.Duration(s.Retry) * time.Millisecond
		}
		switch {
		case err == nil:
		case idled.Load():
			return fmt.Errorf("no data for %s (not even a heartbeat)", t.idleTimeout())
		case errors.Is(err, io.EOF):
			return errors.New("the server ended the stream")
		default:
			return err
		}
		if err := t.handle(ev); err != nil {
			return err
		}
		idle.Reset(t.idleTimeout())
	}
}

func (t *httpTail) idleTimeout() time.Duration {
	if t.heartbeat > 0 {
		return 3*t.heartbeat + 5*time.Second
	}
	return tailIdle
}

// resumeFrom is the Last-Event-ID to send. Before anything was printed and
// without --from, it asks for a seq beyond any real one: the server answers
// with a status message (replay "ahead") that carries the newest seq and
// then streams live, so "from now" gets a resume point at once and a
// disconnect before the first notification loses nothing.
func (t *httpTail) resumeFrom() string {
	if t.last < 0 {
		t.probing = true
		return strconv.FormatInt(math.MaxInt64, 10)
	}
	t.probing = false
	return strconv.FormatInt(t.last, 10)
}

// wireMessage is a stream message with its data left undecoded.
type wireMessage struct {
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	Timestamp      int64           `json:"timestamp"`
	NotificationID string          `json:"notificationId"`
}

// handle acts on one event: prints notifications, learns the heartbeat
// interval and the resume point, and reports the server's status notes.
func (t *httpTail) handle(ev sseclient.Event) error {
	var m wireMessage
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		return fmt.Errorf("unreadable stream message: %w", err)
	}
	switch m.Type {
	case "connected":
		t.connected = true
		var d struct {
			HeartbeatInterval int64 `json:"heartbeatInterval"`
		}
		if json.Unmarshal(m.Data, &d) == nil && d.HeartbeatInterval > 0 {
			t.heartbeat = time.Duration(d.HeartbeatInterval) * time.Millisecond
		}
	case "status":
		var d struct {
			Replay          string `json:"replay"`
			ResumeFrom      int64  `json:"resumeFrom"`
			OldestAvailable int64  `json:"oldestAvailable"`
			LastSeq         int64  `json:"lastSeq"`
			Closing         string `json:"closing"`
			Message         string `json:"message"`
		}
		_ = json.Unmarshal(m.Data, &d)
		switch d.Replay {
		case "ahead":
			if !t.probing {
				fmt.Fprintf(t.stderr, "note: seq %d is beyond the newest one (%d); showing new notifications\n", d.ResumeFrom, d.LastSeq)
			}
			t.last, t.probing = d.LastSeq, false
		case "truncated":
			fmt.Fprintf(t.stderr, "note: retention removed notifications before seq %d; those after %d were missed\n", d.OldestAvailable, d.ResumeFrom)
		}
		if d.Closing != "" {
			t.log.Info("the server is closing the stream", "reason", d.Closing, "message", d.Message)
		}
	case "notification":
		var d stream.NotificationData
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return fmt.Errorf("unreadable notification: %w", err)
		}
		seq := d.Seq
		if n, err := strconv.ParseInt(ev.ID, 10, 64); err == nil {
			seq = n
		}
		if t.last >= 0 && seq <= t.last {
			return nil // already printed (the server resumes after Last-Event-ID; this is a safeguard)
		}
		t.last = seq
		var raw bytes.Buffer
		if err := json.Compact(&raw, ev.Data); err != nil {
			return fmt.Errorf("unreadable notification: %w", err)
		}
		return t.out.print(time.UnixMilli(m.Timestamp), d, raw.Bytes())
	}
	return nil
}
