package app_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(b)
}

// metricValue returns the value of the sample whose name and labels start
// with prefix.
func metricValue(t *testing.T, text, prefix string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `\S* (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no sample %s in:\n%s", prefix, text)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestMetricsAfterTraffic reads the metrics back after real traffic.
func TestMetricsAfterTraffic(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	r := apptest.Open(t, srv.URL(), env.Token("alice"), "")
	if _, err := env.DB.Pool.Exec(context.Background(), `INSERT INTO notify.notifications (message)
		SELECT 'n' || g FROM generate_series(1, 25) g`); err != nil {
		t.Fatal(err)
	}
	got := r.Notifications(25, 10*time.Second)
	resumed := apptest.Open(t, srv.URL(), env.Token("alice"), got[19].EventID) // replays 5
	resumed.Notifications(5, 10*time.Second)
	request(t, "POST", srv.URL()+"/api/notifications/ws", env.Token("alice"), `{"action":"status"}`, nil)
	request(t, "POST", srv.URL()+"/api/notifications/ws", env.Token("alice"), `{"action":`, nil)

	text := scrape(t, srv.URL())
	checks := []struct {
		prefix string
		min    float64
	}{
		// The insert's commit publishes its first four rows itself
		// (migration 00007); the workers publish the other 21.
		{"notifyd_notifications_published_total", 21},
		{"notifyd_notifications_delivered_total", 25},
		{"notifyd_notifications_replayed_total", 5},
		{"notifyd_streams_open", 2},
		{"notifyd_streams_opened_total", 2},
		{"notifyd_publish_batch_size_count", 1},
		{"notifyd_claim_batch_size_count", 1},
		{"notifyd_publish_duration_seconds_count", 1},
		{"notifyd_end_to_end_latency_seconds_count", 1},
		{`notifyd_queue_items{status="pending"}`, 0},
		{`notifyd_queue_items{status="failed"}`, 0},
		{"notifyd_queue_oldest_pending_age_seconds", 0},
		{`notifyd_http_requests_total{code="200",method="POST",route="/api/notifications/ws"}`, 1},
		{`notifyd_http_requests_total{code="400",method="POST",route="/api/notifications/ws"}`, 1},
		{"notifyd_listener_reconnects_total", 0},
		{"go_goroutines", 1},
	}
	for _, c := range checks {
		if v := metricValue(t, text, c.prefix); v < c.min {
			t.Errorf("%s = %v, want at least %v", c.prefix, v, c.min)
		}
	}
	if strings.Contains(text, "alice") {
		t.Error("a user id appears in the metrics")
	}
	resumed.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && metricValue(t, scrape(t, srv.URL()), "notifyd_streams_open") != 1 {
		time.Sleep(20 * time.Millisecond)
	}
	if v := metricValue(t, scrape(t, srv.URL()), `notifyd_streams_closed_total{reason="closed"}`); v != 1 {
		t.Errorf("streams closed %v, want 1", v)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env, srv := apptest.NewNode(t)
	if resp := request(t, "GET", srv.URL()+"/healthz", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for request(t, "GET", srv.URL()+"/readyz", "", "", nil).StatusCode != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A schema behind the binary is reported by name.
	if _, err := env.DB.Pool.Exec(context.Background(), `DELETE FROM notify_schema_migrations WHERE version_id = (SELECT max(version_id) FROM notify_schema_migrations)`); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"migrations"`) {
		t.Fatalf("readyz with a schema behind: %d %s", resp.StatusCode, b)
	}
}

func TestStaticClientIsServed(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	_, srv := apptest.NewNode(t)
	for _, path := range []string{
		"/static/notify-client.js", "/static/notify-client-core.js", "/static/use-notification-sse.js",
		"/static/notify-inbox.js", "/static/notify-inbox-react.js", "/static/inbox/state.js",
	} {
		resp, err := http.Get(srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(string(b), "export") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp := request(t, "GET", srv.URL()+"/static/", "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("directory listing: %d", resp.StatusCode)
	}
}
