package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/auth"
	"github.com/notifyd/notifyd/internal/httpapi"
	"github.com/notifyd/notifyd/internal/hub"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/postgres"
	"github.com/notifyd/notifyd/internal/signin"
	"github.com/notifyd/notifyd/internal/stream"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// TestOpenAPIDescribesEveryRoute: every route the server registers is in
// /openapi.json, and every path and method described there is registered.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	notes, queue := postgres.NewNotifications(db.Pool), postgres.NewQueue(db.Pool)
	streams, err := stream.NewServer(hub.New(hub.Config{}), notes, stream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(auth.Config{IssuerURL: "http://127.0.0.1:1/issuer", Audience: "x"})
	if err != nil {
		t.Fatal(err)
	}
	flow, err := signin.New(verifier, postgres.NewSessions(db.Pool), signin.Config{ClientID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Deps{Auth: verifier, Notifications: notes, Queue: queue, Streams: streams,
		SignIn: flow, Metrics: metrics.New(queue), Mounts: map[string]http.Handler{"/dev-issuer": http.NotFoundHandler()}}, httpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}

	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	srvResp := serve(t, api.Handler(), "/openapi.json")
	if err := json.Unmarshal(srvResp, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v (version %q)", err, doc.OpenAPI)
	}
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			described[strings.ToUpper(method)+" "+path] = true
		}
	}
	param := regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	registered := map[string]bool{}
	for _, r := range api.Routes() {
		registered[r[0]+" "+param.ReplaceAllString(r[1], "{$1}")] = true
	}
	var missing, extra []string
	for k := range registered {
		if !described[k] {
			missing = append(missing, k)
		}
	}
	for k := range described {
		if !registered[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("registered but not described: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("described but not registered: %v", extra)
	}
}

// serve answers one GET through h on a real server.
func serve(t *testing.T, h http.Handler, path string) []byte {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return b
}
