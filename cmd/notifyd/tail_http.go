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
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/wire"
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
	t := &httpTail{ctx: ctx, endpoint: endpoint, printed: o.from, out: out, log: log, stderr: stderr}
	// Before anything was printed and without --from, the first connection
	// asks for a seq beyond any real one: the server answers with a status
	// message (replay "ahead") that carries the newest seq and then streams
	// live, so "from now" gets a resume point at once and a disconnect
	// before the first notification loses nothing.
	from := o.from
	if from < 0 {
		from = tailProbe
	}
	token := strings.TrimSpace(strings.TrimPrefix(o.token, "Bearer "))
	t.r = wire.NewReader(wire.ReaderConfig{
		Client:         &http.Client{},
		URL:            func() string { return endpoint },
		Header:         http.Header{"Authorization": {"Bearer " + token}},
		From:           from,
		MinBackoff:     tailMinBackoff,
		MaxBackoff:     tailMaxBackoff,
		UseRetryField:  true,
		Idle:           tailIdle,
		OnNotification: t.notification,
		OnMessage:      t.message,
		OnMalformed:    t.malformed,
		OnRetry:        t.retry,
	})
	return t.r.Run(ctx)
}

// tailProbe is the resume point that asks the server for its newest seq.
const tailProbe = math.MaxInt64

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
	ctx      context.Context // for the log lines
	r        *wire.Reader
	endpoint string
	printed  int64 // last seq printed; -1: none yet
	out      *tailPrinter
	log      *slog.Logger
	stderr   io.Writer
}

// retry stops when retrying cannot help, and otherwise says that it
// reconnects.
func (t *httpTail) retry(rt wire.Retry) error {
	if fatal := t.fatal(rt.Err); fatal != nil {
		return fatal
	}
	msg, attrs := "stream interrupted; reconnecting", []any{"err", rt.Err, "retry_in", rt.Wait.Round(time.Millisecond)}
	if t.r.Stats().Connects == 0 {
		msg = "cannot open the stream; retrying (check --url and that notifyd is running there)"
	}
	if last := t.r.LastSeq(); last != tailProbe && last >= 0 {
		attrs = append(attrs, "resume_after_seq", last)
	}
	t.log.WarnContext(t.ctx, msg, attrs...)
	return nil
}

// fatal returns the error to stop with when retrying cannot help.
func (t *httpTail) fatal(err error) error {
	var se *wire.StatusError
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

// message learns the resume point from the server's status notes, and
// reports them.
func (t *httpTail) message(m wire.Received) error {
	if m.Type != wire.TypeStatus {
		return nil
	}
	d, _ := m.Status() // the reader has checked it decodes
	switch d.Replay {
	case wire.ReplayAhead:
		probing := t.r.LastSeq() == tailProbe
		if !probing {
			fmt.Fprintf(t.stderr, "note: seq %d is beyond the newest one (%d); showing new notifications\n", deref(d.ResumeFrom), deref(d.LastSeq))
		}
		t.r.ResumeAfter(deref(d.LastSeq))
	case wire.ReplayTruncated:
		fmt.Fprintf(t.stderr, "note: retention removed notifications before seq %d; those after %d were missed\n", deref(d.OldestAvailable), deref(d.ResumeFrom))
	}
	if d.Closing != "" {
		t.log.InfoContext(t.ctx, "the server is closing the stream", "reason", d.Closing, "message", d.Message)
	}
	return nil
}

// notification prints a notification once.
func (t *httpTail) notification(dl wire.Delivery) error {
	if t.printed >= 0 && dl.Seq <= t.printed {
		return nil // already printed (the server resumes after Last-Event-ID; this is a safeguard)
	}
	m, err := wire.Decode(dl.Event)
	var d wire.Notification
	if err == nil {
		d, err = m.Notification()
	}
	var raw bytes.Buffer
	if err == nil {
		err = json.Compact(&raw, dl.Event.Data)
	}
	if err != nil {
		return t.malformed(fmt.Errorf("unreadable notification: %w", err))
	}
	t.printed = dl.Seq
	return t.out.print(time.UnixMilli(m.Timestamp), d, raw.Bytes())
}

// malformed reports a message tail cannot read, and goes on with the next.
func (t *httpTail) malformed(err error) error {
	t.log.WarnContext(t.ctx, "skipping an unreadable stream message", "err", err)
	return nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
