package httpapi

import (
	"container/list"
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// rateLimiter is a token bucket per caller: rate tokens a second, up to
// burst. It holds at most maxKeys buckets, so a flood of distinct callers
// (addresses, for the sign-in limit) cannot grow memory without bound: the
// least recently used bucket makes room, and buckets that have refilled are
// dropped as they come up, so memory follows the active callers. An evicted
// caller starts again with a full bucket; that is the price of the bound.
type rateLimiter struct {
	rate    float64
	burst   float64
	maxKeys int
	mu      sync.Mutex
	seen    map[string]*list.Element // of *bucket
	lru     list.List                // front: most recently used
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time
}

func newRateLimiter(rate float64, burst, maxKeys int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), maxKeys: max(maxKeys, 1), seen: map[string]*list.Element{}}
}

// allow takes a token for key; when there is none it returns how long until
// there will be.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropRefilled(now)
	var b *bucket
	if e := l.seen[key]; e != nil {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		if len(l.seen) >= l.maxKeys {
			delete(l.seen, l.lru.Remove(l.lru.Back()).(*bucket).key)
		}
		b = &bucket{key: key, tokens: l.burst, at: now}
		l.seen[key] = l.lru.PushFront(b)
	}
	b.tokens, b.at = l.level(b, now), now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	return false, wait
}

// dropRefilled forgets the least recently used buckets while they are full
// again: they are no different from a new one.
func (l *rateLimiter) dropRefilled(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		b := e.Value.(*bucket)
		if l.level(b, now) < l.burst {
			return
		}
		l.lru.Remove(e)
		delete(l.seen, b.key)
	}
}

func (l *rateLimiter) level(b *bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
}

// clientKey is the bucket key of the request's client address: the peer's
// IP, which behind a trusted proxy is the browser's (forwarded rewrites it;
// X-Forwarded-For from anyone else is never believed), and for IPv6 its
// /64, since one end site usually has a whole /64 to pick addresses from.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// clientIP is the request's client address for logs: the peer's, or behind
// a trusted proxy the browser's.
func clientIP(r *http.Request) string {
	if addr, ok := peerAddr(r.RemoteAddr); ok {
		return addr.String()
	}
	return r.RemoteAddr
}
