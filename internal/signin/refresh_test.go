package signin

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"golang.org/x/oauth2"
)

// TestRefreshAnswers: what each answer of a token endpoint does to a
// session's refresh: a refused grant ends it, an answer that asks for a
// retry (Hydra's, when a refresh races a revocation) is retried at once,
// and the rest (a server error, the network) leave it for later.
func TestRefreshAnswers(t *testing.T) {
	answer := func(status int, code, description string) error {
		return fmt.Errorf("oauth2: cannot fetch token: %w", &oauth2.RetrieveError{
			Response: &http.Response{StatusCode: status}, ErrorCode: code, ErrorDescription: description})
	}
	for _, c := range []struct {
		name           string
		err            error
		retry, refused bool
	}{
		{"revoked grant", answer(400, "invalid_grant", "The provided authorization grant is invalid"), false, true},
		{"token hook denies the user", answer(403, "access_denied", ""), false, true},
		{"refresh raced the revocation (Hydra)", answer(400, "invalid_request", "Failed to refresh token. Please retry the request."), true, false},
		{"concurrent refreshes (Hydra)", answer(400, "invalid_request", "Failed to refresh token because of multiple concurrent requests using the same token. Please retry the request."), true, false},
		{"issuer failing", answer(500, "server_error", ""), false, false},
		{"misconfigured client", answer(401, "invalid_client", ""), false, false},
		{"network", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false, false},
	} {
		if got := askedToRetry(c.err); got != c.retry {
			t.Errorf("%s: retried %v, want %v", c.name, got, c.retry)
		}
		if _, got := refused(c.err); got != c.refused {
			t.Errorf("%s: refused %v, want %v", c.name, got, c.refused)
		}
	}
}
