package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/notify"
)

const identityKey = "notifyd.identity"

// maxAuthorizationBytes bounds the Authorization header we are willing to parse.
const maxAuthorizationBytes = 16 << 10

// authenticate accepts a bearer token, or else the browser session cookie.
// Cookie-authenticated requests that change state must come from this site
// or an allowed origin (cross-site request forgery). Anything else is 401
// (503 when the issuer cannot be reached).
func (a *API) authenticate() gin.HandlerFunc {
	return a.handle(func(c *gin.Context) error {
		id, err := a.identify(c.Request)
		if err != nil {
			return err
		}
		c.Set(identityKey, id)
		c.Next()
		return nil
	})
}

func (a *API) identify(r *http.Request) (notify.Identity, error) {
	if header := r.Header.Get("Authorization"); header != "" || a.deps.SignIn == nil {
		token, err := bearerToken(header)
		if err != nil {
			return notify.Identity{}, err
		}
		return a.deps.Auth.Verify(r.Context(), token)
	}
	id, ok, err := a.deps.SignIn.Authenticate(r)
	switch {
	case err != nil:
		return notify.Identity{}, err
	case !ok:
		return notify.Identity{}, fmt.Errorf("%w: sign in at /auth/login or send Authorization: Bearer <token>", notify.ErrUnauthenticated)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !a.sameSite(r) {
		return notify.Identity{}, fmt.Errorf("%w: cross-site request refused (the Origin is not this site or an allowed origin)", notify.ErrForbidden)
	}
	return id, nil
}

func bearerToken(header string) (string, error) {
	switch {
	case header == "":
		return "", fmt.Errorf("%w: missing Authorization: Bearer <token>", notify.ErrUnauthenticated)
	case len(header) > maxAuthorizationBytes:
		return "", fmt.Errorf("%w: Authorization header is too long", notify.ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", fmt.Errorf("%w: Authorization must be \"Bearer <token>\"", notify.ErrUnauthenticated)
	}
	return token, nil
}

func identity(c *gin.Context) notify.Identity {
	v, _ := c.Get(identityKey)
	id, _ := v.(notify.Identity)
	return id
}
