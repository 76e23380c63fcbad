package httpapi

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestRateLimiterIsBounded: a flood of distinct callers (addresses, for the
// sign-in limit) cannot grow the limiter's memory past its bound, and the
// callers it still holds keep their limit.
func TestRateLimiterIsBounded(t *testing.T) {
	t.Parallel()
	l := newRateLimiter(0.01, 2, 100)
	now := time.Now()
	for i := range 10_000 {
		l.allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
		if len(l.seen) > 100 || l.lru.Len() != len(l.seen) {
			t.Fatalf("after %d callers: %d buckets (%d in the LRU list), want at most 100", i+1, len(l.seen), l.lru.Len())
		}
	}
	for range 2 {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatal("refused within the burst")
		}
	}
	if ok, wait := l.allow("a", now); ok || wait <= 0 {
		t.Fatalf("past the burst: ok=%v wait=%v, want refused with a wait", ok, wait)
	}
	// Refilled buckets are forgotten: memory follows the active callers.
	l.allow("b", now.Add(time.Hour))
	if len(l.seen) != 1 {
		t.Errorf("%d buckets an hour later, want only the new caller's", len(l.seen))
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ remote, forwarded, want string }{
		{"192.0.2.7:5555", "", "192.0.2.7"},
		{"192.0.2.7:5555", "203.0.113.9", "192.0.2.7"}, // X-Forwarded-For is anyone's to write
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:80", "", "192.0.2.7"},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
		if tt.forwarded != "" {
			r.Header.Set("X-Forwarded-For", tt.forwarded)
		}
		if got := clientKey(r); got != tt.want {
			t.Errorf("clientKey(%s) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}
