package auth

import "strings"

// BearerToken extracts the token from an Authorization header value
// ("Bearer <token>", RFC 6750 section 2.1). The scheme is matched without
// regard to case and surrounding spaces are ignored. It refuses an empty
// token, one with characters outside the RFC's b64token syntax, and values
// over 16 KiB, so that nothing absurd reaches signature checking.
func BearerToken(authorizationHeader string) (token string, ok bool) {
	if len(authorizationHeader) > maxTokenBytes {
		return "", false
	}
	scheme, token, found := strings.Cut(strings.TrimSpace(authorizationHeader), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || !isB64Token(token) {
		return "", false
	}
	return token, true
}

// isB64Token reports whether s is 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
// "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
