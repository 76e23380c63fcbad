package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// notifydBinary builds cmd/notifyd once for the package's tests.
func notifydBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "notifyd-cluster-test-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		binary, buildErr = cluster.Build(ctx, buildDir, raceFlags...)
		t.Logf("built notifyd %v in %s", raceFlags, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// fixture is a database, an issuer and notifyd node processes on them.
type fixture struct {
	env    *apptest.Env
	nodes  []*cluster.Node
	client *http.Client
}

// setup starts n nodes on one fresh database, trusting the test issuer.
// env adds or overrides node settings.
func setup(t *testing.T, n int, env map[string]string) *fixture {
	t.Helper()
	bin := notifydBinary(t)
	f := &fixture{env: apptest.NewEnv(t), client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	t.Cleanup(f.client.CloseIdleConnections)
	settings := map[string]string{
		"OIDC_ISSUER_URL":     f.env.Issuer.URL(),
		"OIDC_AUDIENCE":       apptest.Audience,
		"NOTIFY_PUBLISH_RATE": "-1",
		// Idle workers look at the queue often, so every node's worker
		// competes for it, not only the one the inserts wake.
		"NOTIFY_POLL_INTERVAL": "100ms",
		"NOTIFY_LOG_LEVEL":     "warn",
	}
	for k, v := range env {
		settings[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, err := cluster.StartNodes(ctx, n, func(i int) cluster.NodeConfig {
		name := fmt.Sprintf("node%d", i)
		return cluster.NodeConfig{Binary: bin, DatabaseURL: f.env.DB.URL, Env: settings,
			Log: cluster.LineWriter(func(line string) { t.Logf("%s: %s", name, line) })}
	})
	f.nodes = nodes
	for i, node := range f.nodes {
		if node != nil {
			t.Cleanup(func() {
				if err := node.Stop(15 * time.Second); err != nil && !isKilled(err) {
					t.Errorf("node%d: %v", i, err)
				}
			})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// urls lists the nodes' base URLs.
func (f *fixture) urls() []string {
	out := make([]string, len(f.nodes))
	for i, n := range f.nodes {
		out[i] = n.URL()
	}
	return out
}

// streams are readers of a test's nodes, each with the identity it streams
// as (ids[i] is readers[i]'s), running until the test stops them.
type streams struct {
	ctx     context.Context
	wg      sync.WaitGroup
	readers []*cluster.Reader
	ids     []notify.Identity
}

// startStreams returns streams that run until ctx ends or stop is called;
// stop waits for every reader to return.
func startStreams(ctx context.Context) (s *streams, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	s = &streams{ctx: ctx}
	return s, func() { cancel(); s.wg.Wait() }
}

// add starts a reader with cfg, streaming as id.
func (s *streams) add(id notify.Identity, cfg cluster.ReaderConfig) *cluster.Reader {
	r := cluster.NewReader(cfg)
	s.readers, s.ids = append(s.readers, r), append(s.ids, id)
	s.wg.Go(func() { r.Run(s.ctx) })
	return r
}

func isKilled(err error) bool { return err != nil && strings.Contains(err.Error(), "signal: killed") }
