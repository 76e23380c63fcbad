package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// nodeRun is what the node phases share over a run: the notifyd binary,
// built once, and one OpenID Connect issuer every node trusts, so a token
// works on any node and a stream can resume anywhere.
type nodeRun struct {
	cfg    config
	bin    string
	tmp    string
	iss    *cluster.Issuer
	logOut io.Writer
}

func startNodeRun(ctx context.Context, cfg config, prog *progress, logOut io.Writer) (*nodeRun, error) {
	nr := &nodeRun{cfg: cfg, bin: cfg.NotifydBin, logOut: logOut}
	ok := false
	defer func() {
		if !ok {
			nr.Close()
		}
	}()
	if nr.bin == "" {
		dir, err := os.MkdirTemp("", "notifyd-bench-")
		if err != nil {
			return nil, err
		}
		nr.tmp = dir
		start := time.Now()
		if nr.bin, err = cluster.Build(ctx, dir); err != nil {
			return nil, err
		}
		prog.Printf("built notifyd in %.1f s", time.Since(start).Seconds())
	}
	var err error
	if nr.iss, err = cluster.StartIssuer(audience); err != nil {
		return nil, err
	}
	ok = true
	return nr, nil
}

// Close stops the issuer and removes the built binary.
func (nr *nodeRun) Close() {
	if nr.iss != nil {
		nr.iss.Close()
	}
	if nr.tmp != "" {
		os.RemoveAll(nr.tmp)
	}
}

// token signs a token for sub with roles, valid longer than any run.
func (nr *nodeRun) token(sub string, roles []string) (string, error) {
	return nr.iss.Token(sub, roles, 24*time.Hour)
}

// nodeEnv is one phase's nodes on the phase's own fresh database.
type nodeEnv struct {
	run   *nodeRun
	db    *benchDB
	nodes []*cluster.Node
	set   *cluster.Nodes
	admin *pgxpool.Pool
	http  *http.Client
	// baseline is each node's RSS right after it started, with no streams.
	baseline []int64
	// settings is every node's environment.
	settings map[string]string
}

// startNodes creates a database and starts n nodes on it, each listening
// on its own loopback address (127.0.0.2, .3, …), with env on top of the
// bench's defaults.
func (nr *nodeRun) startNodes(ctx context.Context, n int, env map[string]string) (*nodeEnv, error) {
	db, err := createDatabase(ctx, nr.cfg.ServerURL, nr.cfg.DBSettings)
	if err != nil {
		return nil, err
	}
	e := &nodeEnv{run: nr, db: db, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		settings: nr.nodeSettings(env)}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	if e.nodes, err = cluster.StartNodes(ctx, n, func(i int) cluster.NodeConfig { return e.nodeConfig(i) }); err != nil {
		return nil, err
	}
	urls := make([]string, n)
	e.baseline = make([]int64, n)
	for i, node := range e.nodes {
		urls[i] = node.URL()
		e.baseline[i], _ = node.RSS()
	}
	e.set = cluster.NewNodes(urls)
	if e.admin, err = newPool(ctx, db.URL, 4, "notifyd-bench-admin"); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// nodeSettings is every node's environment: the bench's defaults, env on
// top, -node-env last.
func (nr *nodeRun) nodeSettings(env map[string]string) map[string]string {
	settings := map[string]string{
		"OIDC_ISSUER_URL":     nr.iss.URL(),
		"OIDC_AUDIENCE":       audience,
		"NOTIFY_PUBLISH_RATE": "-1",
		"NOTIFY_LOG_LEVEL":    "warn",
	}
	if nr.cfg.Verbose {
		settings["NOTIFY_LOG_LEVEL"] = "info"
	}
	for k, v := range env {
		settings[k] = v
	}
	for k, v := range nr.cfg.NodeEnv { // experiments win
		settings[k] = v
	}
	return settings
}

// restartNode starts node i again, once it has exited, on the address it
// had, so that clients and producers holding its URL find it again.
func (e *nodeEnv) restartNode(ctx context.Context, i int) error {
	n, err := e.nodes[i].Restart(ctx)
	if err != nil {
		return err
	}
	e.nodes[i] = n
	return nil
}

// nodeConfig is node i on the phase's database, listening on a free port
// of 127.0.0.<2+i>.
func (e *nodeEnv) nodeConfig(i int) cluster.NodeConfig {
	return cluster.NodeConfig{Binary: e.run.bin, DatabaseURL: e.db.URL, IP: "127.0.0." + strconv.Itoa(2+i),
		Env: e.settings, Log: prefixWriter(e.run.logOut, fmt.Sprintf("node%d: ", i))}
}

// Close stops the nodes and drops the database.
func (e *nodeEnv) Close() error {
	if e.admin != nil {
		e.admin.Close()
	}
	var wg sync.WaitGroup
	for _, n := range e.nodes {
		if n != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = n.Stop(15 * time.Second) }()
		}
	}
	wg.Wait()
	e.http.CloseIdleConnections()
	return e.db.Drop()
}

// cpu is each live node's CPU so far.
func (e *nodeEnv) cpu() []time.Duration {
	out := make([]time.Duration, len(e.nodes))
	for i, n := range e.nodes {
		if e.nodes[i].Running() {
			out[i], _ = n.CPUTime()
		}
	}
	return out
}

// memory reads each live node's RSS and open streams.
func (e *nodeEnv) memory(ctx context.Context) []NodeMemory {
	out := make([]NodeMemory, 0, len(e.nodes))
	for i, n := range e.nodes {
		if !e.nodes[i].Running() {
			continue
		}
		rss, err := n.RSS()
		if err != nil {
			continue
		}
		streams, _ := n.Metric(ctx, "notifyd_streams_open")
		m := NodeMemory{Node: fmt.Sprintf("node%d", i), Streams: int(streams), RSSMiB: mib(rss), BaselineMiB: mib(e.baseline[i])}
		if streams > 0 {
			m.PerStreamKiB = float64(rss) / 1024 / streams
			m.MarginalKiB = float64(rss-e.baseline[i]) / 1024 / streams
		}
		out = append(out, m)
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// prefixWriter writes each line to w with prefix.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	return cluster.LineWriter(func(line string) { fmt.Fprintf(w, "%s%s\n", prefix, line) })
}
