package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// writeGrace is how long past the request's deadline its answer may still
// be written, so that a request cut by the deadline gets its 408 or 503
// instead of a dropped connection.
const writeGrace = time.Second

// deadlines bounds every request except the event stream: its body must
// arrive, and its handler finish, within Config.RequestTimeout of the
// request's headers, and the answer be written by then (plus writeGrace).
// A client that trickles a body (slowloris) is cut off, whether or not the
// handler reads the body: net/http's own draining of an unread body hits
// the same read deadline.
//
// Why per request and not http.Server's ReadTimeout and WriteTimeout: those
// apply to every connection, the stream's too. A server-wide ReadTimeout
// stays on the connection while a stream is set up, where net/http's
// background read meets it and cancels the request; a stream that cannot be
// detached (HTTP/2) would die after it, and a server-wide WriteTimeout would
// cut every such stream. Here the stream gets no deadline at all (it sets
// its own per write; see package stream), and deadlines a previous request
// left on a reused connection are cleared.
func (a *API) deadlines() gin.HandlerFunc {
	return func(c *gin.Context) {
		rc := http.NewResponseController(c.Writer)
		deadline := time.Now().Add(a.cfg.RequestTimeout)
		if isStream(c) {
			if c.Request.ContentLength != 0 {
				// A stream reads nothing from its client: a body could
				// only serve to hold the connection.
				_ = rc.SetReadDeadline(deadline)
				_ = rc.SetWriteDeadline(deadline.Add(writeGrace))
				a.fail(c, errorf(http.StatusBadRequest, "the event stream takes no request body"))
				return
			}
			_ = rc.SetWriteDeadline(time.Time{})
			c.Next()
			return
		}
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline.Add(writeGrace))
		ctx, cancel := context.WithDeadline(c.Request.Context(), deadline)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
