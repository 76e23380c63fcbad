package httpapi

import (
	"bytes"
	"errors"
	"html"
	"io/fs"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/web"
)

// testPagePath is the monitoring and test page (CONTRACT.md, HTTP).
const testPagePath = "/test-notifications"

// pageCSP lets the page load only this server's scripts, styles and
// streams: no inline script or style, no framing, no plug-ins. Everything
// the page shows is data from the API, so a message that carries markup
// can do nothing even if a rendering bug let it into the DOM.
const pageCSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// displayNameMarker is where the page shows the signed-in user's name: the
// page is static and its script sees only the user id, so the server writes
// the name (OIDC_NAME_CLAIM) in, escaped; nothing when it is the user id.
const displayNameMarker = "<!--notifyd:display-name-->"

func withDisplayName(page []byte, name string) []byte {
	return bytes.Replace(page, []byte(displayNameMarker), []byte(html.EscapeString(name)), 1)
}

// testPage serves GET /test-notifications: a static document (web/pages)
// whose module script (/static/test-notifications.js) does the work with
// the session cookie. Without a valid session the browser is sent to sign
// in and brought back here.
func (a *API) testPage() gin.HandlerFunc {
	page, err := fs.ReadFile(web.Pages, "pages/test-notifications.html")
	if err != nil {
		panic(err) // the embed pattern guarantees the file
	}
	return a.handle(func(c *gin.Context) error {
		if a.deps.SignIn == nil {
			return errorf(http.StatusNotFound, "the test page needs browser sign-in (configure OIDC_ISSUER_URL and OIDC_AUDIENCE, or NOTIFY_DEV_AUTH=1 for development)")
		}
		id, ok, err := a.deps.SignIn.Authenticate(c.Request)
		switch {
		case !ok || errors.Is(err, notify.ErrUnauthenticated):
			// No session, or an ended or expired one: sign in again.
			c.Header("Cache-Control", "no-store")
			c.Redirect(http.StatusFound, "/auth/login?redirect="+url.QueryEscape(c.Request.URL.RequestURI()))
			return nil
		case err != nil:
			return err
		}
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		name := a.deps.SignIn.DisplayName(c.Request)
		if name == id.UserID {
			name = "" // the page shows the user id beside it anyway
		}
		c.Data(http.StatusOK, "text/html; charset=utf-8", withDisplayName(page, name))
		return nil
	})
}
