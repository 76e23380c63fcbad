package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/wire"
)

func request(t *testing.T, method, url, token, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCORS(t *testing.T) {
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.AllowedOrigins = []string{"https://app.example"}
	srv := env.Start(cfg)
	tok := env.Token("alice")

	t.Run("allowed origin gets credentials, never a wildcard", func(t *testing.T) {
		resp := request(t, "POST", srv.URL()+"/api/notifications/ws", tok, `{"action":"status"}`, map[string]string{"Origin": "https://app.example"})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
			t.Errorf("Allow-Origin %q", got)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Error("no Allow-Credentials")
		}
	})
	t.Run("preflight", func(t *testing.T) {
		resp := request(t, "OPTIONS", srv.URL()+"/api/notifications", "", "", map[string]string{
			"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
		if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Idempotency-Key") ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("other origins get no CORS headers", func(t *testing.T) {
		for _, method := range []string{"OPTIONS", "POST"} {
			resp := request(t, method, srv.URL()+"/api/notifications/ws", tok, `{"action":"status"}`, map[string]string{
				"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
			for k := range resp.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("%s from a foreign origin got %s", method, k)
				}
			}
		}
	})
}

func TestStreamLimits(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.MaxStreams = 3
	cfg.MaxStreamsPerUser = 2
	srv := env.Start(cfg)
	a := env.Token("a")
	apptest.Open(t, srv.URL(), a, "")
	apptest.Open(t, srv.URL(), a, "")
	_, err := apptest.TryOpen(srv.URL(), a, "")
	if se, ok := err.(*wire.StatusError); !ok || se.Status != http.StatusTooManyRequests || !strings.Contains(se.Body, `"error"`) {
		t.Fatalf("third stream of one user: %v, want 429 with a JSON error", err)
	}
	apptest.Open(t, srv.URL(), env.Token("b"), "")
	resp := request(t, "GET", srv.URL()+"/api/notifications/ws", env.Token("c"), "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("stream past the node cap: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestPublishRateLimit(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	// Admin roles (services) have a limit of their own (issue 14); this
	// test pins its mechanics: one token per 100 s, no refill during the
	// test however slow the machine.
	cfg.AdminPublishRate = 0.01
	cfg.AdminPublishBurst = 3
	srv := env.Start(cfg)
	admin := env.Token("svc", "ADMIN")
	body := `{"message":"hi","targetUserId":"x"}`
	for i := range 3 {
		if resp := request(t, "POST", srv.URL()+"/api/notifications", admin, body, nil); resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := request(t, "POST", srv.URL()+"/api/notifications", admin, body, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("publish past the burst: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another caller has its own bucket.
	if resp := request(t, "POST", srv.URL()+"/api/notifications", env.Token("svc2", "ADMIN"), body, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another caller: %d", resp.StatusCode)
	}
	var n int
	if err := env.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM notify.notifications`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d notifications stored, want 4 (the refused one wrote nothing): %v", n, err)
	}
}
