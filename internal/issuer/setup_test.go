package issuer_test

import (
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/testkit"
)

type fixture struct {
	iss    *issuer.Issuer
	srv    *httptest.Server
	clock  *testkit.Clock
	client *http.Client // no cookie jar, does not follow redirects
}

// setup starts an issuer at path (e.g. "/dev-issuer", or "" for the root) of a
// real HTTP server, mounted the way notifyd mounts it.
func setup(t *testing.T, path string, mutate func(*issuer.Config)) fixture {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	cfg := issuer.Config{
		URL:    "http://" + srv.Listener.Addr().String() + path,
		Clock:  clock.Now,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	iss, err := issuer.New(cfg)
	if err != nil {
		t.Fatalf("issuer.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(iss.MountPath(), iss.Handler())
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return fixture{iss: iss, srv: srv, clock: clock, client: client}
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// signIn plays the browser: it opens authURL, reads the hidden fields of the
// sign-in page and posts them with the user id and roles. It returns the
// response to the POST, normally a redirect back to the client.
func (f fixture) signIn(t *testing.T, authURL, userID string, roles url.Values) *http.Response {
	t.Helper()
	resp, body := f.get(t, authURL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET authorize: %s: %s", resp.Status, body)
	}
	form := url.Values{"user_id": {userID}}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range roles {
		form[k] = v
	}
	resp, err := f.client.PostForm(f.iss.AuthorizationEndpoint(), form)
	if err != nil {
		t.Fatalf("POST authorize: %v", err)
	}
	resp.Body.Close()
	return resp
}

func (f fixture) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := f.client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", u, err)
	}
	return resp, string(body)
}

// redirectParams checks that resp redirects to want and returns its query.
func redirectParams(t *testing.T, resp *http.Response, want string) url.Values {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %s, want 303 redirect", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != want {
		t.Fatalf("redirected to %s, want %s", got, want)
	}
	return loc.Query()
}
