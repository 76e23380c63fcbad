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
// only method, route, status, duration, the user id and the client's
// address (the browser's behind a trusted proxy) are logged.
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
		route := routeLabel(c)
		status := c.Writer.Status()
		if a.deps.Metrics != nil {
			a.deps.Metrics.HTTPRequests.WithLabelValues(route, methodLabel(c.Request.Method), strconv.Itoa(status)).Inc()
			if !isStream(c) {
				a.deps.Metrics.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
			}
		}
		if isStream(c) && status == http.StatusOK {
			return
		}
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		log.Log(c.Request.Context(), level, "http request", "method", c.Request.Method, "route", route,
			"status", status, "duration", time.Since(start).Round(time.Microsecond), "user_id", identity(c).UserID,
			"client", clientIP(c.Request))
	}
}

const (
	loggerKeyName = "notifyd.logger"
	streamRoute   = "/api/notifications/ws"
	// unmatchedRoute is the route label of every request that matched no
	// route (404, and 405 for a method a path does not have).
	unmatchedRoute = "unmatched"
)

// isStream reports whether c is the event stream (not the actions posted
// to the same path).
func isStream(c *gin.Context) bool {
	return c.Request.Method == http.MethodGet && c.FullPath() == streamRoute
}

// routeLabel is the request's route for metrics and logs: the matched
// route's template (/api/notifications/:id/read), never the raw path, so
// the label's values are bounded by the routes this server registers.
func routeLabel(c *gin.Context) string {
	if route := c.FullPath(); route != "" {
		return route
	}
	return unmatchedRoute
}

// methodLabel maps a request method onto a fixed set for metrics. Any token
// is a valid method and unauthenticated callers choose it, so a raw method
// label would let anyone add a series per request to /metrics.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

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
