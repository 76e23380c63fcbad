package httpapi

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/notifyd/notifyd/internal/signin"
)

// forwardedHeaders are what a reverse proxy says about the browser's
// request. From any peer not in NOTIFY_TRUSTED_PROXIES they are removed
// before a handler sees the request: any client can write them.
// X-Forwarded-Proto stays: alone it can only make cookies Secure (signin),
// which a client can do to its own cookies anyway, and deployments behind a
// TLS proxy not yet listed as trusted keep their Secure cookies.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "Forwarded"}

// ParseTrustedProxies reads NOTIFY_TRUSTED_PROXIES: CIDRs or single
// addresses separated by commas or spaces ("127.0.0.1/32, 10.0.0.0/8, ::1").
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !strings.Contains(f, "/") {
			addr, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("NOTIFY_TRUSTED_PROXIES: %q is neither an address nor a CIDR", f)
			}
			out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("NOTIFY_TRUSTED_PROXIES: %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// trusted reports whether addr is one of the trusted proxies.
func (a *API) trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// forwarded honours X-Forwarded-For, -Proto and -Host from trusted proxies
// only. For a trusted peer the request's RemoteAddr becomes the client's
// address (the rightmost X-Forwarded-For entry that is not itself a trusted
// proxy, as a chain of proxies appends), its Host the forwarded host, and its
// context carries the public origin, from which browser sign-in builds its
// callback when OIDC_REDIRECT_URL is unset. Rate limits and logs then see
// the browser's address, not the proxy's. From anyone else the headers are
// dropped (but X-Forwarded-Proto, see forwardedHeaders), so nothing
// downstream can be misled by them.
func (a *API) forwarded() gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		peer, ok := peerAddr(r.RemoteAddr)
		if !ok || !a.trusted(peer) {
			for _, h := range forwardedHeaders {
				r.Header.Del(h)
			}
			c.Next()
			return
		}
		if client, ok := a.forwardedClient(r.Header.Values("X-Forwarded-For")); ok {
			r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
		}
		if host := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(host) {
			r.Host = host
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
			scheme = p
		}
		if validHost(r.Host) {
			c.Request = r.WithContext(signin.WithPublicOrigin(r.Context(), scheme+"://"+r.Host))
		}
		c.Next()
	}
}

// forwardedClient walks X-Forwarded-For from the right past the trusted
// proxies and returns the first address that is not one.
func (a *API) forwardedClient(values []string) (netip.Addr, bool) {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // a garbled chain names no one
		}
		if addr = addr.Unmap(); !a.trusted(addr) || i == 0 {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// peerAddr is the address of the connection's other end.
func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}

// firstValue is the first of a comma-separated header's values: the one the
// proxy nearest the browser wrote.
func firstValue(s string) string {
	first, _, _ := strings.Cut(s, ",")
	return strings.TrimSpace(first)
}

// validHost reports whether s can be a host[:port] of an origin: letters,
// digits, dots, dashes, colons and brackets (IPv6), nothing that could
// change a URL built from it.
func validHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}
