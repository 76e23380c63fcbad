package wire

// The client side of the format: a Server-Sent Events parser that reads a
// stream the way a browser's EventSource does (id, data and retry fields; a
// blank line ends an event; comments ignored). It knows nothing of
// notifyd's messages, so the bench reads Centrifugo's stream with it too.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Event is one dispatched SSE event.
type Event struct {
	// ID is the event's id field ("" when it had none).
	ID string
	// Data is the event's data (lines joined by \n).
	Data []byte
}

// Stream is an open event stream.
type Stream struct {
	body  io.ReadCloser
	r     *bufio.Reader
	retry time.Duration
}

// StatusError is a non-200 answer to the stream request.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("stream answered %d: %s", e.Status, e.Body) }

// Open requests url with header and returns the stream once the server has
// answered 200 with text/event-stream.
func Open(ctx context.Context, client *http.Client, url string, header http.Header) (*Stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("stream request: %w", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &StatusError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	return &Stream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 16<<10)}, nil
}

// Next reads the next event. It returns io.EOF when the server ends the stream.
func (s *Stream) Next() (Event, error) {
	var ev Event
	var data bytes.Buffer
	hasData := false
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull { // a long line: copy what we have before reading on
			head := append([]byte(nil), line...)
			rest, err2 := s.r.ReadBytes('\n')
			line, err = append(head, rest...), err2
		}
		if err != nil {
			if err == io.EOF && len(line) == 0 {
				return Event{}, io.EOF
			}
			if err != io.EOF {
				return Event{}, err
			}
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if hasData {
				ev.Data = append([]byte(nil), data.Bytes()...)
				return ev, nil
			}
			ev = Event{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			ev.ID = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "retry":
			if n, err := strconv.Atoi(string(value)); err == nil {
				s.retry = time.Duration(n) * time.Millisecond
			}
		}
	}
}

// Retry is the last retry field the stream sent (0: none yet): how long the
// server asks a client to wait before reconnecting.
func (s *Stream) Retry() time.Duration { return s.retry }

// Close ends the stream.
func (s *Stream) Close() error { return s.body.Close() }

// FailureKind names why a stream request failed, coarsely enough to count:
// "status 503", "connection refused", "connection reset", "timeout",
// "closed early" (the connection ended before the connected message), or
// the innermost error's message for anything else.
func FailureKind(err error) string {
	var status *StatusError
	var netErr net.Error
	switch {
	case errors.As(err, &status):
		return "status " + strconv.Itoa(status.Status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed early"
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u // the innermost error says most
	}
	return fmt.Sprintf("%.80s", err.Error())
}
