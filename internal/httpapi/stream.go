package httpapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/stream"
)

// stream serves GET /api/notifications/ws.
func (a *API) stream(c *gin.Context) error {
	seq, ok, err := stream.ParseResume(c.GetHeader("Last-Event-ID"), c.Query("lastEventId"))
	if err != nil {
		return err
	}
	ctx := stream.WithLogger(c.Request.Context(), a.logger(c))
	// An HTTP/1.1 client gets a chunked body, so it can tell the server's
	// end of the stream from a crash.
	ctx = stream.WithChunking(ctx, c.Request.ProtoAtLeast(1, 1))
	err = a.deps.Streams.Serve(ctx, c.Writer, identity(c), stream.Resume{Seq: seq, Set: ok})
	switch {
	case errors.Is(err, hub.ErrUserLimit):
		return errorf(http.StatusTooManyRequests, "too many open streams for this user; close one (tabs of one browser can share a stream)")
	case errors.Is(err, hub.ErrFull):
		return &httpError{status: http.StatusServiceUnavailable, msg: "this node serves as many streams as it may; retry later",
			header: map[string]string{"Retry-After": "5"}}
	}
	return err
}
