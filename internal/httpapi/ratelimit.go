package httpapi

import (
	"math"
	"sync"
	"time"
)

// rateLimiter is a token bucket per caller: rate tokens a second, up to
// burst. Buckets that have refilled are forgotten, so memory follows the
// active callers.
type rateLimiter struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	seen  map[string]*bucket
	sweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), seen: map[string]*bucket{}}
}

// allow takes a token for key; when there is none it returns how long until
// there will be.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > time.Minute {
		for k, b := range l.seen {
			if l.level(b, now) >= l.burst {
				delete(l.seen, k)
			}
		}
		l.sweep = now
	}
	b := l.seen[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.seen[key] = b
	}
	b.tokens, b.at = l.level(b, now), now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	return false, wait
}

func (l *rateLimiter) level(b *bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
}
