package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestHTTPMetricLabelsStayBounded: anyone can send requests with made-up
// methods and paths, unauthenticated; each must not add a series to
// /metrics, or a scraper and the process's memory grow without bound.
// Normal requests are still counted by route template and method.
func TestHTTPMetricLabelsStayBounded(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	_, srv := apptest.NewNode(t)
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(method, path string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), method, srv.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	paths := []string{"/healthz", "/api/notifications/ws", "/api/notifications/abc/read", "/static/x.js"}
	for i := range 200 {
		method := fmt.Sprintf("FOO%d%x", i, rand.Uint32())
		path := fmt.Sprintf("/x/%d/%x", i, rand.Uint64())
		if i%2 == 0 {
			path = paths[i%len(paths)] // a real route, with a method it does not have
		}
		send(method, path)
	}
	send("get", "/healthz") // methods are case-sensitive: not GET
	if code := send(http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz: %d", code)
	}
	send(http.MethodPost, "/api/notifications/1/read") // 401, counted under the route template

	text := scrape(t, srv.URL())
	var series []string
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "notifyd_http_requests_total{") {
			series = append(series, strings.TrimSpace(line))
		}
	}
	if len(series) > 12 {
		t.Fatalf("%d notifyd_http_requests_total series after 200 odd requests, want a handful:\n%s",
			len(series), strings.Join(series[:min(len(series), 20)], "\n"))
	}
	if strings.Contains(text, "FOO") || strings.Contains(text, "/x/") {
		t.Error("a request's own method or path appears in the metrics")
	}
	for _, c := range []struct {
		prefix string
		min    float64
	}{
		{`notifyd_http_requests_total{code="200",method="GET",route="/healthz"}`, 1},
		{`notifyd_http_requests_total{code="401",method="POST",route="/api/notifications/:id/read"}`, 1},
		{`notifyd_http_requests_total{code="404",method="other",route="unmatched"}`, 50},
	} {
		if v := metricValue(t, text, c.prefix); v < c.min {
			t.Errorf("%s = %v, want at least %v", c.prefix, v, c.min)
		}
	}
	if n := strings.Count(text, "notifyd_http_request_duration_seconds_count{"); n > 12 {
		t.Errorf("%d duration series, want a handful", n)
	}
}
