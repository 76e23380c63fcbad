package httpapi

import (
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/notify"
)

const identityKey = "notifyd.identity"

// maxAuthorizationBytes bounds the Authorization header we are willing to parse.
const maxAuthorizationBytes = 16 << 10

// authenticate verifies the bearer token and stores the identity, or
// answers 401 (503 when the issuer cannot be reached).
func (a *API) authenticate() gin.HandlerFunc {
	return a.handle(func(c *gin.Context) error {
		token, err := bearerToken(c.GetHeader("Authorization"))
		if err != nil {
			return err
		}
		id, err := a.deps.Auth.Verify(c.Request.Context(), token)
		if err != nil {
			return err
		}
		c.Set(identityKey, id)
		c.Next()
		return nil
	})
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
