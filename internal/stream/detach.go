package stream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"time"
)

// Why streams detach from net/http: a stream can stay open for hours, and
// while its handler runs net/http keeps, for that one connection, the
// handler's goroutine (16 KiB of stack once the request has gone through
// the middleware, authentication and the database), a 4 KiB read buffer, a
// 4 KiB and a 2 KiB write buffer, the request with its headers, and gin's
// context. At 15,000 idle streams that is most of the process's memory.
// Once the stream's headers and first messages are written, the stream
// takes the TCP connection over (http.Hijacker), the handler returns and
// all of that is released. Once open, the stream is parked (park.go): no
// goroutine of its own while it has nothing to write; the server's poller
// learns when the client goes away (what net/http's own background read did
// before), and the hub's wake starts a goroutine when there is something to
// write. Where a connection cannot be watched, one small goroutine serves
// the stream instead (liveConn): it waits in a 64-byte read of the
// connection, which the hub interrupts. Not a reader and a writer: each
// holds a stack of 4 KiB once it has written or read (a stack that has
// grown never shrinks back to 2 KiB), which was half of an idle stream's
// memory.
//
// For an HTTP/1.1 client the response is chunked ("Transfer-Encoding:
// chunked", "Connection: close"): each batch goes out as one chunk, and a
// stream the server ends writes the last chunk before it closes. A client
// can then tell a clean end from a crash (the process killed, the
// connection cut), where the last chunk never comes and its HTTP library
// reports an unexpected EOF: libraries that treat a clean end of body as
// "done" (r3labs/sse) reconnect after a crash. An HTTP/1.0 client (which
// cannot take chunks) gets the body delimited by the connection's end, as
// before. Where the connection cannot be taken over (HTTP/2, a test
// recorder) the stream stays in net/http for its whole life, and net/http
// frames it.

type chunkedKey struct{}

// WithChunking tells Serve that the client speaks HTTP/1.1, so a detached
// stream may frame its body in chunks. Without it, a detached stream's body
// ends with the connection.
func WithChunking(ctx context.Context, ok bool) context.Context {
	return context.WithValue(ctx, chunkedKey{}, ok)
}

func chunkingFrom(ctx context.Context) bool {
	ok, _ := ctx.Value(chunkedKey{}).(bool)
	return ok
}

// lastChunk ends a chunked body.
var lastChunk = []byte("0\r\n\r\n")

// detach takes over the connection behind w and writes the response's
// status line and w's headers to it, announcing a chunked body when
// chunked. ok is false (and nothing happened) when the connection cannot be
// taken over.
func detach(w http.ResponseWriter, chunked bool) (conn net.Conn, ok bool, err error) {
	conn, _, err = http.NewResponseController(w).Hijack()
	if err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// Bytes the client sent after its request (pipelining) stay unread in
	// the returned reader: a stream reads nothing from its client.
	h := w.Header().Clone()
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	if chunked {
		h.Set("Transfer-Encoding", "chunked")
	}
	b := []byte("HTTP/1.1 200 OK\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	if err := conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err == nil {
		_, err = conn.Write(b)
	}
	if err != nil {
		conn.Close()
		return nil, false, err
	}
	return conn, true, nil
}

// clientWatch notices, while a detached stream opens, that its client
// closed the connection (or it broke), which a write alone would only find
// out later, and cancels the opening. Once the stream is open the server's
// poller (park.go) or the stream's own goroutine (liveConn) takes the
// reading over.
type clientWatch struct {
	conn net.Conn
	done chan struct{}
	gone bool // the client left; read once done is closed
}

func watchClient(conn net.Conn, cancel context.CancelFunc) *clientWatch {
	w := &clientWatch{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) { // not stop's
					w.gone = true
					cancel()
				}
				return
			}
		}
	}()
	return w
}

// stop ends the watch and reports whether the client had left.
func (w *clientWatch) stop() bool {
	_ = w.conn.SetReadDeadline(aLongTimeAgo)
	<-w.done
	return w.gone
}

// aLongTimeAgo, as a read deadline, makes a blocked read return at once.
var aLongTimeAgo = time.Unix(1, 0)
