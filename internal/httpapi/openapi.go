package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPI describes the HTTP API; a test checks it against the registered
// routes in both directions.
//
//go:embed openapi.json
var openAPI []byte

func (a *API) openapi(c *gin.Context) error {
	c.Data(http.StatusOK, "application/json", openAPI)
	return nil
}
