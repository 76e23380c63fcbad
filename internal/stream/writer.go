package stream

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// writer writes frames to one client, in batches that each go out under
// one write deadline. It has two modes.
//
// Through net/http (w, rc): frames go into the connection's own buffered
// writer and Flush sends them. This is the mode while a stream is set up,
// and for the whole stream when the connection cannot be detached (HTTP/2,
// test recorders).
//
// Detached (conn): the stream owns the TCP connection (see detach). A batch
// is a list of the frames' own bytes, shared with every other stream that
// gets them, written with one writev: no copy and no buffer of ours, so an
// idle stream holds no memory beyond its subscriber and this struct.
type writer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	conn    net.Conn
	chunked bool        // detached: each batch goes out as one HTTP/1.1 chunk
	batch   net.Buffers // detached: frames waiting for flush, after a slot for the chunk's header when chunked
	out     net.Buffers // detached: what one flush writes (WriteTo consumes it; batch stays)
	header  [18]byte    // detached, chunked: the chunk's size in hex and CRLF
	timeout time.Duration
	// limit, while the stream opens, is its opening deadline: no write's
	// deadline goes past it (Config.OpeningTimeout). Zero: no limit.
	limit   time.Time
	armed   bool  // the deadline for the current batch is set
	err     error // the first write error of the batch
	pending int   // bytes written (or batched) since the last flush

	// now, detached and parked (park.go), writes what it is given in one
	// attempt that does not wait for the client, and says how many bytes
	// the socket took. With noWait set, a flush uses it, and leaves what
	// the socket did not take in the batch (errWouldBlock): the next
	// flush, without noWait, writes that rest under a deadline. A parked
	// stream's connection has no write deadline between flushes, since
	// such an attempt fails on a deadline that has passed.
	now    func(net.Buffers) (int, error)
	noWait bool
	framed bool // the batch is framed as its chunk (header and CRLF in place): part of it may be written
}

// errWouldBlock: a flush with noWait wrote part of its batch, or none;
// the rest is still in the batch (unfinished).
var errWouldBlock = errors.New("stream: the client's socket is full; the rest of the batch is left to write")

func (wr *writer) setDeadline(t time.Time) error {
	if wr.conn != nil {
		return wr.conn.SetWriteDeadline(t)
	}
	return wr.rc.SetWriteDeadline(t)
}

// deadline is the deadline of a write starting now.
func (wr *writer) deadline() time.Time {
	d := time.Now().Add(wr.timeout)
	if !wr.limit.IsZero() && wr.limit.Before(d) {
		return wr.limit
	}
	return d
}

func (wr *writer) arm() {
	if wr.armed || wr.err != nil {
		return
	}
	if err := wr.setDeadline(wr.deadline()); err != nil && !errors.Is(err, http.ErrNotSupported) {
		wr.err = err
	}
	wr.armed = true
}

// add writes b as part of the current batch. In detached mode b is kept
// until flush and must not change: frames are immutable once built.
func (wr *writer) add(b []byte) {
	wr.pending += len(b)
	if wr.conn != nil {
		if wr.chunked && len(wr.batch) == 0 {
			wr.batch = append(wr.batch, nil) // the chunk's header, written by flushConn
		}
		wr.batch = append(wr.batch, b)
		return
	}
	wr.arm()
	if wr.err != nil {
		return
	}
	_, wr.err = wr.w.Write(b)
}

// flush sends the batch to the client and reports the batch's first error.
func (wr *writer) flush() error {
	if wr.conn != nil {
		return wr.flushConn()
	}
	wr.arm()
	if wr.err == nil {
		wr.err = wr.rc.Flush()
	}
	err := wr.err
	wr.armed, wr.err, wr.pending = false, nil, 0
	return err
}

// flushConn writes the batch with one writev. A flush allocates nothing:
// a heartbeat or a notification to an idle stream leaves no garbage of
// ours behind (the chunk's header is the writer's own array, and the batch
// already holds its slot).
func (wr *writer) flushConn() error {
	var err error
	if len(wr.batch) > 0 {
		if wr.chunked && !wr.framed {
			h := strconv.AppendInt(wr.header[:0], int64(wr.pending), 16)
			wr.batch[0] = append(h, "\r\n"...)
			wr.batch = append(wr.batch, crlf)
		}
		wr.framed = true
		if wr.noWait && wr.now != nil {
			if err = wr.writeNow(); errors.Is(err, errWouldBlock) {
				return err
			}
		} else if err = wr.conn.SetWriteDeadline(wr.deadline()); err == nil {
			wr.out = wr.batch // a field, not a local: WriteTo's receiver would escape
			_, err = wr.out.WriteTo(wr.conn)
			wr.out = nil
			if err == nil && wr.now != nil {
				err = wr.conn.SetWriteDeadline(time.Time{}) // see now
			}
		}
	}
	clear(wr.batch) // drop references to the frames' bytes
	wr.batch = wr.batch[:0]
	if cap(wr.batch) > 64 { // a burst or a replay is over: do not keep its memory
		wr.batch = nil
	}
	wr.pending, wr.framed = 0, false
	return err
}

// maxNowBuffers bounds the buffers of one attempt without waiting (the
// kernel takes at most 1,024 in a writev); a larger batch is written
// under a deadline.
const maxNowBuffers = 1024

// writeNow makes the one attempt of a flush with noWait and drops what it
// wrote from the batch.
func (wr *writer) writeNow() error {
	if len(wr.batch) > maxNowBuffers {
		return errWouldBlock
	}
	n, err := wr.now(wr.batch)
	if err != nil {
		return err
	}
	wr.batch = consume(wr.batch, n)
	if len(wr.batch) > 0 {
		return errWouldBlock
	}
	return nil
}

// unfinished reports whether a flush left part of its batch unwritten.
func (wr *writer) unfinished() bool { return wr.framed && len(wr.batch) > 0 }

// consume drops the first n bytes of bufs, in place.
func consume(bufs net.Buffers, n int) net.Buffers {
	i := 0
	for i < len(bufs) && n >= len(bufs[i]) {
		n -= len(bufs[i])
		i++
	}
	if i < len(bufs) {
		bufs[i] = bufs[i][n:]
	}
	k := copy(bufs, bufs[i:])
	clear(bufs[k:])
	return bufs[:k]
}

var crlf = []byte("\r\n")

// finish ends a detached chunked body with its last chunk, so the client
// knows the server ended the stream on purpose; a crash never writes it.
func (wr *writer) finish() {
	if wr.conn == nil || !wr.chunked {
		return
	}
	if wr.conn.SetWriteDeadline(time.Now().Add(time.Second)) == nil {
		_, _ = wr.conn.Write(lastChunk)
	}
}

// abort makes a blocked write return now (the stream is being dropped).
func (wr *writer) abort() { _ = wr.setDeadline(time.Now()) }
