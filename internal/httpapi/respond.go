package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/notify"
)

// httpError is an error with the status and message to answer with.
type httpError struct {
	status int
	msg    string
	header map[string]string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

var (
	errNoRoute  = errorf(http.StatusNotFound, "no such endpoint")
	errNoMethod = errorf(http.StatusMethodNotAllowed, "method not allowed on this endpoint")
)

// handle adapts a handler that returns an error.
func (a *API) handle(fn func(*gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := fn(c); err != nil {
			a.fail(c, err)
		}
	}
}

// fail answers err as JSON with the status its kind calls for.
func (a *API) fail(c *gin.Context, err error) {
	if c.Request.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away: nobody to answer, nothing went wrong here.
		c.Abort()
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	var he *httpError
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
		for k, v := range he.header {
			c.Header(k, v)
		}
	case errors.Is(err, notify.ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, notify.ErrUnauthenticated):
		status, msg = http.StatusUnauthorized, err.Error()
		c.Header("WWW-Authenticate", `Bearer realm="notifyd"`)
	case errors.Is(err, notify.ErrForbidden):
		status, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, notify.ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, notify.ErrConflict):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(c.Request.Context().Err(), context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "the request took longer than this server allows; try again shortly"
		c.Header("Retry-After", "1")
	case errors.Is(err, notify.ErrUnavailable):
		status, msg = http.StatusServiceUnavailable, "service unavailable, try again shortly"
		c.Header("Retry-After", "1")
	}
	if status >= 500 {
		a.logger(c).ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method,
			"path", c.FullPath(), "status", status, "err", err)
	}
	if c.Writer.Written() {
		return
	}
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// recoverer turns a panic into a logged 500 instead of a dropped connection.
func (a *API) recoverer() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.fail(c, fmt.Errorf("panic: %v", p))
			}
		}()
		c.Next()
	}
}
