package localdb

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

const mask = "xxxxx"

// kvPassword matches a password in a key=value connection string, quoted or not.
var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// urlPassword matches the password of a URL that net/url cannot parse (a bad
// port, say): everything between the user's colon and the last @.
var urlPassword = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/]*:)(.+)@`)

// redactURL shows a connection string with its passwords masked, so that an
// error can say which server it tried without leaking the credential into
// logs.
func redactURL(connString string) string {
	if u, err := url.Parse(connString); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
		q := u.Query()
		for key := range q {
			if strings.Contains(strings.ToLower(key), "password") {
				q.Set(key, mask)
			}
		}
		if len(q) > 0 {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	connString = urlPassword.ReplaceAllString(connString, "${1}"+mask+"@")
	return kvPassword.ReplaceAllString(connString, "${1}"+mask)
}

// passwords lists the secrets in a connection string as the driver would
// read them, so that they can be scrubbed from any error text, including the
// driver's own best-effort redaction of strings it cannot parse.
func passwords(connString string) []string {
	var out []string
	if cfg, err := pgconn.ParseConfig(connString); err == nil && cfg.Password != "" {
		out = append(out, cfg.Password)
	}
	if u, err := url.Parse(connString); err == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw, url.UserPassword("", pw).String()[1:])
		}
	}
	if m := urlPassword.FindStringSubmatch(connString); m != nil {
		out = append(out, m[2])
	}
	for _, m := range kvPassword.FindAllStringSubmatch(connString, -1) {
		out = append(out, strings.Trim(m[2], "'"))
	}
	return out
}

// redactedError is err with every secret of a connection string scrubbed
// from its text. It still unwraps to err, for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact scrubs the secrets of connString from err's text.
func redact(err error, connString string) error {
	msg := err.Error()
	for _, pw := range passwords(connString) {
		if len(pw) >= 3 { // shorter would mangle the message more than it hides
			msg = strings.ReplaceAll(msg, pw, mask)
		}
	}
	return &redactedError{msg: msg, err: err}
}
