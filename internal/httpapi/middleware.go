package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

type loggerKey struct{}

// requestID gives every request an id (the caller's X-Request-Id when it is
// sane, else a fresh one), echoes it, and logs one line per request with it.
// The stream route logs its own open and close lines instead, so a long
// stream does not produce a misleading duration here. Tokens never appear:
// only method, route, status, duration and the user id are logged.
func (a *API) requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if !saneID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Header("X-Request-Id", id)
		log := a.log.With("request_id", id)
		c.Set(loggerKeyName, log)
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		if a.deps.Metrics != nil {
			a.deps.Metrics.HTTPRequests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
			if route != streamRoute {
				a.deps.Metrics.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
			}
		}
		if route == streamRoute && status == http.StatusOK {
			return
		}
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		log.Log(c.Request.Context(), level, "http request", "method", c.Request.Method, "route", route,
			"status", status, "duration", time.Since(start).Round(time.Microsecond), "user_id", identity(c).UserID)
	}
}

const (
	loggerKeyName = "notifyd.logger"
	streamRoute   = "/api/notifications/ws"
)

// logger is the request's logger (with its request id).
func (a *API) logger(c *gin.Context) *slog.Logger {
	if v, ok := c.Get(loggerKeyName); ok {
		if l, ok := v.(*slog.Logger); ok {
			return l
		}
	}
	return a.log
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}
