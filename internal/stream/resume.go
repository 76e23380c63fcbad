package stream

import (
	"fmt"
	"strconv"

	"github.com/notifyd/notifyd/internal/notify"
)

// maxResumeIDLen bounds a resume id: a bigint has at most 19 digits.
const maxResumeIDLen = 20

// ParseResume reads the resume point from the Last-Event-ID header, or else
// the lastEventId query parameter. ok is false when neither is given. A
// value that is not a non-negative integer is an error wrapping
// notify.ErrInvalid.
func ParseResume(header, query string) (seq int64, ok bool, err error) {
	raw, from := header, "Last-Event-ID header"
	if raw == "" {
		raw, from = query, "lastEventId parameter"
	}
	if raw == "" {
		return 0, false, nil
	}
	if len(raw) > maxResumeIDLen {
		return 0, false, fmt.Errorf("%w: %s is too long (a seq has at most 19 digits)", notify.ErrInvalid, from)
	}
	for _, c := range []byte(raw) {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("%w: %s must be a non-negative integer", notify.ErrInvalid, from)
		}
	}
	seq, perr := strconv.ParseInt(raw, 10, 64)
	if perr != nil {
		return 0, false, fmt.Errorf("%w: %s is out of range", notify.ErrInvalid, from)
	}
	return seq, true, nil
}
