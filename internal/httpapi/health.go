package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// healthz answers while the process can serve HTTP at all.
func (a *API) healthz(c *gin.Context) error {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
	return nil
}

// readyz answers 200 when every component is ready, else 503 with what is
// not; notes (never a reason for 503) come with either.
func (a *API) readyz(c *gin.Context) error {
	var r Readiness
	if a.deps.Ready != nil {
		r = a.deps.Ready(c.Request.Context())
	}
	body := gin.H{"status": "ready"}
	status := http.StatusOK
	if len(r.Problems) > 0 {
		body = gin.H{"status": "not ready", "problems": r.Problems}
		status = http.StatusServiceUnavailable
	}
	if len(r.Notes) > 0 {
		body["notes"] = r.Notes
	}
	c.JSON(status, body)
	return nil
}
