package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/app"
	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// requestTimeout bounds every plain (non-stream) request of these tests.
const requestTimeout = 15 * time.Second

// server is one running notifyd with its own database and issuer, and the
// tokens the tests use.
type server struct {
	env    *apptest.Env
	app    *app.App
	url    string
	client *http.Client
	admin  string // bearer token of "admin-1", role ADMIN
	user   string // bearer token of "user-1", role USER
	other  string // bearer token of "user-2", role USER
}

// setup starts a server on a fresh database. adjust may change the
// configuration before the server starts.
func setup(t testing.TB, adjust ...func(*app.Config)) *server {
	t.Helper()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	for _, f := range adjust {
		f(&cfg)
	}
	a := env.Start(cfg)
	// A transport of our own: no transparent gzip (the stream tests look at
	// Content-Encoding themselves) and idle connections closed at the end.
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &server{
		env: env, app: a, url: a.URL(), client: &http.Client{Transport: tr},
		admin: env.Token("admin-1", "ADMIN"),
		user:  env.Token("user-1", "USER"),
		other: env.Token("user-2", "USER"),
	}
}

// reply is a whole answer to a plain request.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// hdr builds a header from key, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// bearer is the header of a request authenticated with token.
func bearer(token string, kv ...string) http.Header {
	return hdr(append([]string{"Authorization", "Bearer " + token}, kv...)...)
}

// jsonBody is the header of an authenticated JSON request.
func jsonBody(token string, kv ...string) http.Header {
	return bearer(token, append([]string{"Content-Type", "application/json"}, kv...)...)
}

// do sends one request and reads the whole answer.
func (s *server) do(t testing.TB, method, path string, h http.Header, body []byte) reply {
	t.Helper()
	r, err := s.tryDo(method, path, h, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// tryDo is do for goroutines other than the test's: it returns the error.
func (s *server) tryDo(method, path string, h http.Header, body []byte) (reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return reply{}, err
	}
	maps.Copy(req.Header, h)
	resp, err := s.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("read body: %w", err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// postJSON sends v as JSON with token.
func (s *server) postJSON(t testing.TB, path, token string, v any, kv ...string) reply {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode body: %v", err)
	}
	return s.do(t, http.MethodPost, path, jsonBody(token, kv...), b)
}

// errorMessage checks that r is a JSON error answer with status want and
// returns its message: a JSON object with exactly one key, "error", holding
// a non-empty string.
func (r reply) errorMessage(t testing.TB, want int) string {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body: %s", r.status, want, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json; body: %s", ct, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("error body is not a JSON object: %v; body: %q", err, r.body)
	}
	msg, ok := m["error"].(string)
	if !ok || strings.TrimSpace(msg) == "" || len(m) != 1 {
		t.Fatalf(`error body %s, want exactly {"error": "<non-empty message>"}`, r.body)
	}
	return msg
}

// decode unmarshals r's body, which must be a success with status want.
func (r reply) decode(t testing.TB, want int, v any) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body: %s", r.status, want, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// counts is how many rows notify.notifications and notify.queue_items hold.
type counts struct{ notifications, queueItems int }

func (s *server) counts(t testing.TB) counts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var c counts
	err := s.env.DB.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM notify.notifications),
		(SELECT count(*) FROM notify.queue_items)`).Scan(&c.notifications, &c.queueItems)
	if err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return c
}

// exec runs one SQL statement on the test database.
func (s *server) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := s.env.DB.Pool.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// created is the answer of a successful publish.
type created struct {
	Success      bool `json:"success"`
	Notification struct {
		ID          string          `json:"id"`
		Seq         int64           `json:"seq"`
		Message     string          `json:"message"`
		Severity    string          `json:"severity"`
		Module      *string         `json:"module"`
		TargetRoles []string        `json:"targetRoles"`
		Data        json.RawMessage `json:"data"`
	} `json:"notification"`
}

// publish creates a notification through POST /api/notifications as admin
// and returns its id.
func (s *server) publish(t testing.TB, body map[string]any) string {
	t.Helper()
	var c created
	s.postJSON(t, "/api/notifications", s.admin, body).decode(t, http.StatusCreated, &c)
	if !c.Success || c.Notification.ID == "" {
		t.Fatalf("publish answered %+v", c)
	}
	return c.Notification.ID
}

// waitPublished polls until every notification with an id in ids has a seq,
// and returns the seqs in the order of ids.
func (s *server) waitPublished(t testing.TB, ids ...string) []int64 {
	t.Helper()
	seqs := map[string]int64{}
	testkit.Eventually(t, 10*time.Second, "notifications published", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		rows, err := s.env.DB.Pool.Query(ctx, `SELECT id::text, seq FROM notify.notifications
			WHERE id::text = ANY($1) AND seq IS NOT NULL`, ids)
		if err != nil {
			t.Fatalf("read seqs: %v", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var seq int64
			if err := rows.Scan(&id, &seq); err != nil {
				t.Fatalf("scan seq: %v", err)
			}
			seqs[id] = seq
		}
		return len(seqs) == len(ids)
	})
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		out = append(out, seqs[id])
	}
	return out
}

// contains reports whether every one of words appears in msg, ignoring case.
func contains(msg string, words ...string) bool {
	return !slices.ContainsFunc(words, func(w string) bool {
		return !strings.Contains(strings.ToLower(msg), strings.ToLower(w))
	})
}
