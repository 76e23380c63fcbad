// Package hydratest runs Ory Hydra, a certified OpenID Connect provider, for
// end-to-end tests of browser sign-in and bearer tokens against a real
// third-party issuer.
//
// Hydra is built from source by the test itself, from the module in ./tool
// that pins its version, so a machine with nothing but Go and the module
// proxy runs it; later builds come from the Go build cache. It runs as in
// production: `hydra migrate sql up` and `hydra serve all` against a fresh
// database on the test PostgreSQL server (package pgtest), on free loopback
// ports, with --dev only to allow a plain-HTTP issuer.
//
// Hydra has no user database: deployments run a login and consent app
// beside it that authenticates users and tells Hydra, through its admin API,
// who signed in and which claims their tokens carry (Ory's documented
// pattern). Start runs one (login.go) with a small user table.
package hydratest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// Version is the Hydra release ./tool/go.mod pins.
const Version = "v2.3.0"

// Provider is a running Hydra with its login and consent app.
type Provider struct {
	// IssuerURL is Hydra's public URL, the "issuer" of its discovery document.
	IssuerURL string
	// AdminURL is Hydra's admin API.
	AdminURL string

	login  *loginApp
	config string // hydra.yaml
	mu     sync.Mutex
	log    bytes.Buffer // Hydra's output
}

// Start builds Hydra (see Build), gives it a fresh database, runs it and its
// login app with users until t ends, and waits until it serves.
func Start(t testing.TB, users ...User) *Provider {
	t.Helper()
	bin := Build(t)
	dsn := pgtest.NewScratch(t, pgtest.ScratchConfig{Prefix: fmt.Sprintf("hydra_test_%d", os.Getpid())}).URL
	login := startLoginApp(t, users)
	common := append(os.Environ(),
		"DSN="+dsn,
		"SECRETS_SYSTEM="+randomHex(16),
		"URLS_LOGIN="+login.url+"/login",
		"URLS_CONSENT="+login.url+"/consent",
		// JWT access tokens carry these claims of the consent session at
		// their top level, as ID tokens do, not only under "ext".
		"OAUTH2_ALLOWED_TOP_LEVEL_CLAIMS=preferred_username,name,email,groups",
		"SQA_OPT_OUT=true", // no usage reports to Ory
		"LOG_LEVEL=warn",
	)
	// Tokens of every grant, refreshes included, carry the user's claims
	// of now (loginApp.tokenHook). In a file: Hydra reads an environment
	// variable for this setting, whose schema is one of a string and an
	// object, as null.
	config := filepath.Join(t.TempDir(), "hydra.yaml")
	if err := os.WriteFile(config, []byte("oauth2:\n  token_hook: "+login.url+"/token-hook\n"), 0o600); err != nil {
		t.Fatalf("write hydra's configuration: %v", err)
	}
	p := &Provider{login: login, config: config}
	p.run(t, common, bin, "migrate", "sql", "up", "--read-from-env", "--yes")
	var lastErr error
	for range 3 { // a free port may be taken before Hydra binds it
		public, admin := testkit.FreePort(t), testkit.FreePort(t)
		p.IssuerURL = "http://127.0.0.1:" + strconv.Itoa(public)
		p.AdminURL = "http://127.0.0.1:" + strconv.Itoa(admin)
		env := append(slices.Clip(common),
			"URLS_SELF_ISSUER="+p.IssuerURL,
			"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT="+strconv.Itoa(public),
			"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT="+strconv.Itoa(admin),
		)
		if lastErr = p.serve(t, env, bin); lastErr == nil {
			login.setAdmin(p.AdminURL)
			return p
		}
	}
	t.Fatalf("start hydra: %v", lastErr)
	return nil
}

// Build compiles Hydra from the module in ./tool into t's temporary
// directory and returns the binary's path. The first build on a machine
// downloads Hydra's modules and compiles them (minutes); it logs progress
// meanwhile. Later builds come from the Go build cache in seconds.
func Build(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("hydratest: cannot locate its source directory (built with -trimpath?)")
	}
	dir := filepath.Join(filepath.Dir(file), "tool")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("hydratest builds Hydra with the go command, which is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "hydra")
	cmd := exec.Command(goBin, "build", "-C", dir, "-o", bin, "github.com/ory/hydra/v2")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t.Logf("still building Ory Hydra %s (%s so far; the first build on a machine takes minutes)", Version, time.Since(start).Round(time.Second))
			}
		}
	})
	out, err := cmd.CombinedOutput()
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("build Ory Hydra %s (go build -C %s github.com/ory/hydra/v2): %v\n%s", Version, dir, err, out)
	}
	t.Logf("built Ory Hydra %s in %s", Version, time.Since(start).Round(100*time.Millisecond))
	return bin
}

// run runs a Hydra command to its end, failing t if it fails.
func (p *Provider) run(t testing.TB, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hydra %v: %v\n%s", args, err, out)
	}
}

// serve starts `hydra serve all --dev` and waits until both its APIs
// answer. An error means it exited first (a port was taken); it has been
// reaped and may be retried on other ports.
func (p *Provider) serve(t testing.TB, env []string, bin string) error {
	t.Helper()
	cmd := exec.Command(bin, "serve", "all", "--dev", "--config", p.config)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = p, p
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(time.Minute); ; {
		select {
		case <-proc.Exited():
			return fmt.Errorf("hydra exited: %v\n%s", proc.ExitErr(), p.output())
		case <-tick.C:
		}
		if ready(p.AdminURL+"/health/ready") && ready(p.IssuerURL+"/.well-known/openid-configuration") {
			break
		}
		if time.Now().After(deadline) {
			proc.Stop(os.Kill, 0)
			t.Fatalf("hydra did not serve within a minute:\n%s", p.output())
		}
	}
	t.Cleanup(func() {
		proc.Stop(syscall.SIGTERM, 10*time.Second)
		if t.Failed() {
			t.Logf("hydra's output:\n%s", p.output())
		}
	})
	return nil
}

// Write collects Hydra's output, shown when a test fails.
func (p *Provider) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *Provider) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// ready reports whether GET url answers 200.
func ready(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
