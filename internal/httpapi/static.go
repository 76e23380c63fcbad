package httpapi

import (
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/web"
)

// static serves web/static (the browser client and hook) at /static/. The
// modules import each other by relative path, so the directory is served
// whole; they change with the binary, so caches revalidate.
func (a *API) static() gin.HandlerFunc {
	sub, err := fs.Sub(web.Static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	files := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return func(c *gin.Context) {
		if strings.HasSuffix(c.Param("filepath"), "/") {
			a.fail(c, errNoRoute) // no directory listings
			return
		}
		if strings.HasSuffix(c.Request.URL.Path, ".js") {
			c.Header("Content-Type", "text/javascript; charset=utf-8")
		}
		c.Header("Cache-Control", "no-cache")
		c.Header("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(c.Writer, c.Request)
	}
}
