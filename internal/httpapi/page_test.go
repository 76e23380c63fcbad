package httpapi_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/testkit"
)

// sessionCookie creates a browser session for id directly in the database
// (the sign-in flow itself is tested in internal/app) and returns the
// Cookie header that carries it.
func (s *server) sessionCookie(t testing.TB, id notify.Identity) string {
	t.Helper()
	// Shaped like the cookies notifyd issues (32 random bytes, base64url):
	// anything else is refused without a database look-up.
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	hash := sha256.Sum256([]byte(secret))
	if _, err := postgres.NewSessions(s.env.DB.Pool).CreateSession(context.Background(), hash[:], id, time.Now().Add(time.Hour), ""); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return "notifyd_session=" + secret
}

func TestTestPage(t *testing.T) {
	t.Parallel()
	s := setup(t)

	t.Run("without a session it sends the browser to sign in and back", func(t *testing.T) {
		noFollow := &http.Client{Transport: s.client.Transport, Timeout: requestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, cookie := range []string{"", "notifyd_session=unknown"} {
			req, err := http.NewRequest(http.MethodGet, s.url+"/test-notifications?backoffMaxMs=2000", nil)
			if err != nil {
				t.Fatal(err)
			}
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("cookie %q: status %d, want 302", cookie, resp.StatusCode)
			}
			if loc, want := resp.Header.Get("Location"), "/auth/login?redirect=%2Ftest-notifications%3FbackoffMaxMs%3D2000"; loc != want {
				t.Errorf("cookie %q: Location %q, want %q", cookie, loc, want)
			}
		}
	})

	t.Run("with a session it serves the page under a strict CSP", func(t *testing.T) {
		r := s.do(t, http.MethodGet, "/test-notifications", hdr("Cookie", s.sessionCookie(t, notify.Identity{UserID: "alice", Roles: []string{"USER"}})), nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("status %d, Content-Type %q; want 200 HTML", r.status, r.header.Get("Content-Type"))
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
			}
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		body := string(r.body)
		if !strings.Contains(body, `<script type="module" src="/static/test-notifications.js"></script>`) {
			t.Errorf("the page does not load its module script:\n%s", body)
		}
		// Nothing that needs 'unsafe-inline': no inline script, style or handler.
		for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`), regexp.MustCompile(`<style`),
			regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`)} {
			if m := bad.FindString(body); m != "" {
				t.Errorf("the page has inline code or style %q", m)
			}
		}
	})

	t.Run("its script, style and icon are served", func(t *testing.T) {
		for path, ctype := range map[string]string{
			"/static/test-notifications.js":  "text/javascript",
			"/static/test-notifications.css": "text/css",
			"/static/test-notifications.svg": "image/svg+xml",
		} {
			r := s.do(t, http.MethodGet, path, nil, nil)
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), ctype) {
				t.Errorf("GET %s: %d %q, want 200 %s", path, r.status, r.header.Get("Content-Type"), ctype)
			}
		}
	})
}

// TestStatusShowsRecentQueueItems: the admin status lists the queue items
// changed last, for the page's queue table.
func TestStatusShowsRecentQueueItems(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ids := []string{s.publish(t, map[string]any{"message": "first"}), s.publish(t, map[string]any{"message": "second"})}
	s.waitPublished(t, ids...)

	var a struct {
		Queue struct {
			Recent []struct {
				ID             int64     `json:"id"`
				NotificationID string    `json:"notificationId"`
				Status         string    `json:"status"`
				Attempts       int       `json:"attempts"`
				MaxAttempts    int       `json:"maxAttempts"`
				LastError      string    `json:"lastError"`
				NextAttemptAt  time.Time `json:"nextAttemptAt"`
				UpdatedAt      time.Time `json:"updatedAt"`
				Message        string    `json:"message"`
			} `json:"recent"`
		} `json:"queue"`
	}
	testkit.Eventually(t, 10*time.Second, "both items sent", func() bool {
		s.postJSON(t, "/api/notifications/ws", s.admin, map[string]any{"action": "status"}).decode(t, http.StatusOK, &a)
		return len(a.Queue.Recent) == 2 && a.Queue.Recent[0].Status == "sent" && a.Queue.Recent[1].Status == "sent"
	})
	byMessage := map[string]string{}
	for _, it := range a.Queue.Recent {
		byMessage[it.Message] = it.NotificationID
		if it.Attempts != 1 || it.MaxAttempts != 3 || it.LastError != "" || it.ID == 0 || it.UpdatedAt.IsZero() || it.NextAttemptAt.IsZero() {
			t.Errorf("recent item %+v: want sent at the first attempt of 3, no error", it)
		}
	}
	if byMessage["first"] != ids[0] || byMessage["second"] != ids[1] {
		t.Errorf("recent items %v, want the two published (%v)", byMessage, ids)
	}

	var plain map[string]any
	s.postJSON(t, "/api/notifications/ws", s.user, map[string]any{"action": "status"}).decode(t, http.StatusOK, &plain)
	if _, ok := plain["queue"]; ok {
		t.Errorf("a plain user's status shows the queue: %v", plain)
	}
}
