package issuer

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

const (
	// codeTTL is how long an authorization code can be redeemed: long enough
	// for a redirect, short enough that a leaked code is soon useless.
	codeTTL = time.Minute
	// maxCodes bounds memory if someone posts the sign-in form in a loop.
	maxCodes = 10_000
)

// grant is what an authorization code stands for: who signed in, and the
// request the code was issued to, which the token request must repeat.
type grant struct {
	clientID    string
	redirectURI string
	nonce       string
	challenge   string // PKCE S256 code_challenge
	sub         string
	roles       []string
	user, name  string   // as typed on the sign-in page
	scopes      []string // granted: those asked for
	expires     time.Time
}

// codeStore holds outstanding authorization codes in memory. A restart
// forgets them, which costs a developer one more click.
type codeStore struct {
	clock func() time.Time
	mu    sync.Mutex
	codes map[string]grant
}

func newCodeStore(clock func() time.Time) *codeStore {
	return &codeStore{clock: clock, codes: make(map[string]grant)}
}

var errTooManyCodes = errors.New("too many outstanding authorization codes")

// issue stores g under a new random code and returns the code.
func (s *codeStore) issue(g grant) (string, error) {
	buf := make([]byte, 32)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails
	code := base64.RawURLEncoding.EncodeToString(buf)

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	if len(s.codes) >= maxCodes {
		for c, old := range s.codes {
			if !now.Before(old.expires) {
				delete(s.codes, c)
			}
		}
		if len(s.codes) >= maxCodes {
			return "", errTooManyCodes
		}
	}
	g.expires = now.Add(codeTTL)
	s.codes[code] = g
	return code, nil
}

// redeem returns the grant for code and forgets it, so a code works once
// even if this attempt fails its other checks. ok is false for an unknown,
// used or expired code.
func (s *codeStore) redeem(code string) (g grant, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok = s.codes[code]
	delete(s.codes, code)
	if !ok || !s.clock().Before(g.expires) {
		return grant{}, false
	}
	return g, true
}

// verifyPKCE reports whether verifier hashes to the S256 challenge
// (RFC 7636 section 4.6).
func verifyPKCE(challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}
