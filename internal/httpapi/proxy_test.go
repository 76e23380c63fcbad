package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestForwardedHeaders: X-Forwarded-* count only from trusted proxies;
// from anyone else they are removed before a handler sees them, but for
// X-Forwarded-Proto, which only ever makes cookies Secure.
func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	a := &API{cfg: Config{TrustedProxies: trusted}}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(a.forwarded())
	type seen struct{ remote, host, xff, proto string }
	var got seen
	r.GET("/", func(c *gin.Context) {
		got = seen{c.Request.RemoteAddr, c.Request.Host, c.GetHeader("X-Forwarded-For"), c.GetHeader("X-Forwarded-Proto")}
	})
	tests := []struct {
		name   string
		peer   string
		header map[string]string
		want   seen
	}{
		{"untrusted peer: headers dropped", "203.0.113.9:5000",
			map[string]string{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
			seen{"203.0.113.9:5000", "notify.example", "", "https"}},
		{"trusted proxy: client and host", "10.1.2.3:40000",
			map[string]string{"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example:8443"},
			seen{"198.51.100.7:0", "public.example:8443", "198.51.100.7", "https"}},
		{"a chain: the rightmost untrusted address", "192.0.2.1:1234",
			map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.8, 10.9.9.9"},
			seen{"198.51.100.8:0", "notify.example", "6.6.6.6, 198.51.100.8, 10.9.9.9", ""}},
		{"garbled chain: the proxy's own address stays", "10.1.2.3:40000",
			map[string]string{"X-Forwarded-For": "not-an-ip", "X-Forwarded-Host": "bad host/x"},
			seen{"10.1.2.3:40000", "notify.example", "not-an-ip", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://notify.example/", nil)
			req.RemoteAddr = tt.peer
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			r.ServeHTTP(httptest.NewRecorder(), req)
			if got != tt.want {
				t.Fatalf("handler saw %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	got, err := ParseTrustedProxies(" 127.0.0.1, ::1 10.0.0.0/8,")
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %v, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"localhost", "10.0.0.0/33"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
