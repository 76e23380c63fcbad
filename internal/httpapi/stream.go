package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/stream"
)

// stream serves GET /api/notifications/ws.
func (a *API) stream(c *gin.Context) error {
	seq, ok, err := stream.ParseResume(c.GetHeader("Last-Event-ID"), c.Query("lastEventId"))
	if err != nil {
		return err
	}
	a.deps.Streams.Serve(c.Request.Context(), c.Writer, identity(c), stream.Resume{Seq: seq, Set: ok})
	return nil
}
