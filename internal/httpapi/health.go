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

// readyz answers 200 when every component is ready, else 503 with what is not.
func (a *API) readyz(c *gin.Context) error {
	problems := map[string]string{}
	if a.deps.Ready != nil {
		problems = a.deps.Ready(c.Request.Context())
	}
	if len(problems) > 0 {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "problems": problems})
		return nil
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
	return nil
}
