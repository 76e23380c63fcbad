package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// nodeRun is what the node phases share over a run, each phase a method:
// the bench (settings, progress, report), the notifyd binary, built once, and one OpenID Connect issuer every node trusts, so a token
// works on any node and a stream can resume anywhere.
type nodeRun struct {
	bench
	bin string
	tmp string
	iss *cluster.Issuer
}

func startNodeRun(ctx context.Context, b bench) (_ *nodeRun, err error) {
	nr := &nodeRun{bench: b, bin: b.cfg.NotifydBin}
	defer func() { // nr, not the result: a failure returns nil
		if err != nil {
			nr.Close()
		}
	}()
	if nr.bin == "" {
		if nr.tmp, err = os.MkdirTemp("", "notifyd-bench-"); err != nil {
			return nil, err
		}
		start := time.Now()
		if nr.bin, err = cluster.Build(ctx, nr.tmp); err != nil {
			return nil, err
		}
		nr.prog.Printf("built notifyd in %.1f s", time.Since(start).Seconds())
	}
	if nr.iss, err = cluster.StartIssuer(audience); err != nil {
		return nil, err
	}
	return nr, nil
}

func (nr *nodeRun) Close() {
	if nr.iss != nil {
		nr.iss.Close()
	}
	if nr.tmp != "" {
		os.RemoveAll(nr.tmp)
	}
}

// token signs a token for sub with roles, valid longer than any run.
func (nr *nodeRun) token(sub string, roles ...string) (string, error) {
	return nr.iss.Token(sub, roles, 24*time.Hour)
}

// nodeEnv is one phase's nodes on the phase's own fresh database.
type nodeEnv struct {
	run      *nodeRun
	db       *pgtest.Scratch
	nodes    []*cluster.Node
	set      *cluster.Nodes
	admin    *pgxpool.Pool
	http     *http.Client
	baseline []int64           // each node's RSS right after it started, with no streams
	settings map[string]string // every node's environment
}

// startNodes creates a database and starts n nodes on it, node i on a
// free port of 127.0.0.<2+i>, with the bench's defaults, env on top, and
// -node-env last (experiments win).
func (nr *nodeRun) startNodes(ctx context.Context, n int, env map[string]string) (e *nodeEnv, err error) {
	db, err := createDatabase(ctx, nr.cfg)
	if err != nil {
		return nil, err
	}
	e = &nodeEnv{run: nr, db: db, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, settings: map[string]string{
		"OIDC_ISSUER_URL": nr.iss.URL(), "OIDC_AUDIENCE": audience, "NOTIFY_PUBLISH_RATE": "-1", "NOTIFY_LOG_LEVEL": "warn"}}
	if nr.cfg.Verbose {
		e.settings["NOTIFY_LOG_LEVEL"] = "info"
	}
	maps.Copy(e.settings, env)
	maps.Copy(e.settings, nr.cfg.NodeEnv.Map())
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.nodes, err = cluster.StartNodes(ctx, n, func(i int) cluster.NodeConfig {
		return cluster.NodeConfig{Binary: nr.bin, DatabaseURL: db.URL, IP: "127.0.0." + strconv.Itoa(2+i), Env: e.settings,
			Log: prefixWriter(nr.stderr, fmt.Sprintf("node%d: ", i))}
	})
	if err != nil {
		return nil, err
	}
	e.baseline = make([]int64, n)
	for i, node := range e.nodes {
		e.baseline[i], _ = node.RSS()
	}
	e.set = cluster.NewNodes(e.urls())
	e.admin, err = newPool(ctx, db.URL, 4, "notifyd-bench-admin")
	return e, err
}

// Close stops the nodes and drops the database.
func (e *nodeEnv) Close() error {
	if e.admin != nil {
		e.admin.Close()
	}
	_ = e.eachNode(func(i int) error {
		if e.nodes[i] != nil {
			_ = e.nodes[i].Stop(15 * time.Second)
		}
		return nil
	})
	e.http.CloseIdleConnections()
	return e.db.Drop()
}

func (e *nodeEnv) urls() []string {
	urls := make([]string, len(e.nodes))
	for i, n := range e.nodes {
		urls[i] = n.URL()
	}
	return urls
}

// eachNode runs fn for every node at once.
func (e *nodeEnv) eachNode(fn func(i int) error) error {
	errs := make([]error, len(e.nodes))
	var wg sync.WaitGroup
	for i := range e.nodes {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// restartAll stops every node that runs and starts them all again on
// their addresses (clients and producers hold their URLs), back in
// rotation, with env on top of their settings (an empty value removes one).
func (e *nodeEnv) restartAll(ctx context.Context, env map[string]string) error {
	if err := e.eachNode(func(i int) error {
		if !e.nodes[i].Running() {
			return nil
		}
		return e.nodes[i].Stop(15 * time.Second)
	}); err != nil {
		return err
	}
	for k, v := range env {
		e.settings[k] = v
		if v == "" {
			delete(e.settings, k)
		}
	}
	return e.eachNode(func(i int) error {
		e.set.SetDown(i, false)
		return e.restartNode(ctx, i)
	})
}

// restartNode starts node i again, once it has exited, on its address.
func (e *nodeEnv) restartNode(ctx context.Context, i int) error {
	n, err := e.nodes[i].Restart(ctx)
	if err == nil {
		e.nodes[i] = n
	}
	return err
}

// streamsOn is node i's notifyd_streams_open.
func (e *nodeEnv) streamsOn(ctx context.Context, i int) int {
	v, _ := e.nodes[i].Metric(ctx, "notifyd_streams_open")
	return int(v)
}

// memory reads each live node's RSS and open streams.
func (e *nodeEnv) memory(ctx context.Context) []NodeMemory {
	var out []NodeMemory
	for i, n := range e.nodes {
		if rss, err := n.RSS(); n.Running() && err == nil {
			out = append(out, newNodeMemory("node"+strconv.Itoa(i), e.streamsOn(ctx, i), rss, e.baseline[i]))
		}
	}
	return out
}

// killNode SIGKILLs node i and takes it out of the producers' and the
// clients' rotation; beforeKill runs just before the signal. It returns
// the streams the node held and when it was killed.
func (e *nodeEnv) killNode(ctx context.Context, cs *fleet.Fleet, i int, phase string, beforeKill func()) (int, time.Time, error) {
	on := e.streamsOn(ctx, i)
	beforeKill()
	at := time.Now()
	err := e.nodes[i].Kill()
	_ = e.setDown(cs, i, true)
	e.run.prog.Printf("%s: killed node%d (SIGKILL) holding %d streams", phase, i, on)
	return on, at, err
}

// setDown takes node i out of rotation (or puts it back) for the
// producers and for cs's clients.
func (e *nodeEnv) setDown(cs *fleet.Fleet, i int, down bool) error {
	e.set.SetDown(i, down)
	return cs.SetNodeDown(i, down)
}

// layout is where a phase's streams are: stream k belongs to user
// k mod users, starts on node k mod nodes and is held by client process
// k mod processes, so each user's streams are spread over the nodes and
// each process holds a share of every node's.
type layout struct {
	run   *nodeRun
	ids   []notify.Identity // by stream key
	plans []fleet.Plan
}

// newLayout signs a token per user and makes the client processes' plans.
// start is every stream's first Last-Event-ID (negative: none); nodeOf,
// if not nil, places stream k instead.
func (e *nodeEnv) newLayout(pop cluster.Population, streams int, start int64, nodeOf func(k int) int) (*layout, error) {
	procs := max(1, (streams+e.run.cfg.ClientStreams-1)/e.run.cfg.ClientStreams)
	l := &layout{run: e.run, ids: make([]notify.Identity, streams), plans: make([]fleet.Plan, procs)}
	for p := range l.plans {
		l.plans[p] = fleet.Plan{ID: p, SourceIP: fmt.Sprintf("127.0.1.%d", 1+p%250), Nodes: e.urls(), Tokens: map[string]string{}, OpenParallel: 32,
			LeastConnections: e.run.cfg.LeastConn}
	}
	if nodeOf == nil {
		nodeOf = func(k int) int { return k % len(e.nodes) }
	}
	for k := range streams {
		id := pop.Users[k%len(pop.Users)]
		l.ids[k] = id
		p := &l.plans[k%procs]
		if _, ok := p.Tokens[id.UserID]; !ok {
			tok, err := e.run.token(id.UserID, id.Roles...)
			if err != nil {
				return nil, err
			}
			p.Tokens[id.UserID] = tok
		}
		p.Streams = append(p.Streams, fleet.Stream{Key: k, User: id.UserID, Node: nodeOf(k), Start: start})
	}
	return l, nil
}

// open starts the client processes and waits until their streams are
// open, printing progress, and keeps how many opened and how long it took
// (when not nil). browser, if not nil, makes every stream reconnect as
// notifyd's browser client does instead of at once.
func (l *layout) open(ctx context.Context, phase string, browser *fleet.Browser, opened *int, secs *float64) (*fleet.Fleet, error) {
	prog := l.run.prog
	for p := range l.plans {
		l.plans[p].Browser = browser
	}
	cs, err := fleet.Start(l.plans, l.run.stderr)
	if err != nil {
		return nil, err
	}
	stop := prog.Every(2*time.Second, func() string {
		s := cs.Stats()
		return fmt.Sprintf("%s: %d of %d streams open, %d connect errors, client RSS %.0f MiB", phase, s.Open, len(l.ids), s.ConnectErrors, mib(s.RSS))
	})
	n, failed, took, err := cs.WaitOpened(ctx, 10*time.Minute)
	stop()
	if err == nil && failed > 0 {
		err = fmt.Errorf("%s: %d of %d streams did not open within a minute", phase, failed, len(l.ids))
	}
	if err != nil {
		cs.Close()
		return nil, err
	}
	prog.Printf("%s: %d streams open in %.1f s (%d client processes)", phase, n, took, len(l.plans))
	if opened != nil {
		*opened = n
	}
	if secs != nil {
		*secs = took
	}
	return cs, nil
}

// startCPU starts measuring every process's CPU: the nodes', the client
// processes' and the bench's own; the returned stop reads each one's since
// (a killed node's is lost).
func startCPU(e *nodeEnv, cs *fleet.Fleet) (stop func() []ProcCPU) {
	cs.MarkCPU()
	start, self, nodes := time.Now(), processCPU(), make([]time.Duration, len(e.nodes))
	for i, n := range e.nodes {
		nodes[i], _ = n.CPUTime()
	}
	return func() []ProcCPU {
		var out []ProcCPU
		for i, n := range e.nodes {
			if now, err := n.CPUTime(); err == nil && n.Running() {
				out = append(out, ProcCPU{Name: "node" + strconv.Itoa(i), PID: n.PID(), CPUSeconds: (now - nodes[i]).Seconds()})
			}
		}
		for _, c := range cs.CPU() {
			out = append(out, ProcCPU{Name: fmt.Sprintf("client %d", c.ID), PID: c.PID, CPUSeconds: c.CPU.Seconds()})
		}
		out = append(out, ProcCPU{Name: "bench (producers, checks)", CPUSeconds: (processCPU() - self).Seconds()})
		for i := range out {
			out[i].CorePercent = 100 * out[i].CPUSeconds / time.Since(start).Seconds()
		}
		return out
	}
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	d, _ := cluster.CPUTime(os.Getpid())
	return d
}

// StreamTally is what the check of a phase's streams found, and what
// happened to their connections.
type StreamTally struct {
	Resumes       int `json:"resumes"`
	Drops         int `json:"drops"`
	ConnectErrors int `json:"connect_errors"`
	// ConnectFailures counts the failed connects by why (wire.FailureKind).
	ConnectFailures map[string]int `json:"connect_failures,omitempty"`
	CloseReasons    map[string]int `json:"close_reasons,omitempty"`
	Check           cluster.Check  `json:"check"`
	// The clients' reconnect delays (the storm's and the rolling restart's
	// clients pace their reconnects): Spread waits asked for by a closing
	// status (the longest, SpreadMaxMs), Backoffs after lost connections
	// or failed attempts.
	Spread      int   `json:"spread_waits,omitempty"`
	SpreadMaxMs int64 `json:"spread_max_ms,omitempty"`
	Backoffs    int   `json:"backoffs,omitempty"`
}

// checkedStreams is every stream's report and the published notifications
// they were checked against.
type checkedStreams struct {
	reports map[int]fleet.StreamReport
	feed    *cluster.Feed
}

// checkStreams collects every stream's deliveries and checks them against
// the notifications published after start: exactly once, in order, nothing
// foreign.
func checkStreams(ctx context.Context, e *nodeEnv, cs *fleet.Fleet, l *layout, start int64, t *StreamTally) (*checkedStreams, error) {
	reports, err := cs.Report(ctx, true)
	if err != nil {
		return nil, err
	}
	feed, err := cluster.LoadFeed(ctx, e.admin, start)
	if err != nil {
		return nil, err
	}
	t.CloseReasons = map[string]int{}
	for k, id := range l.ids {
		r, ok := reports[k]
		if !ok {
			return nil, fmt.Errorf("no report for stream %d", k)
		}
		t.Check.Add(feed.Check(fmt.Sprintf("stream %d (%s)", k, id.UserID), id, start, r.Seqs))
		t.Resumes, t.Drops, t.ConnectErrors = t.Resumes+r.Stats.Resumes, t.Drops+r.Stats.Drops, t.ConnectErrors+r.Stats.ConnectErrors
		t.CloseReasons = fleet.AddCounts(t.CloseReasons, r.Stats.CloseReasons)
		t.ConnectFailures = fleet.AddCounts(t.ConnectFailures, r.Stats.ConnectFailures)
		if p := r.Pace; p != nil {
			t.Spread, t.SpreadMaxMs, t.Backoffs = t.Spread+p.Spread, max(t.SpreadMaxMs, p.SpreadMaxMs), t.Backoffs+p.Backoffs
		}
		if r.Stats.ProtocolErrors > 0 {
			t.Check.Foreign += r.Stats.ProtocolErrors // a malformed event is not a delivery of anything
			t.Check.Examples = append(t.Check.Examples, fmt.Sprintf("stream %d: %s", k, r.Stats.FirstError))
		}
	}
	return &checkedStreams{reports: reports, feed: feed}, nil
}

// each calls fn for every delivery, to stream k, of a notification whose
// commit time is in commits: its seq, when it was read and when it was
// committed (unix nanoseconds).
func (c *checkedStreams) each(commits map[string]int64, fn func(k int, seq, at, commit int64)) {
	for k, r := range c.reports {
		for i, seq := range r.Seqs {
			if p, ok := c.feed.Get(seq); ok {
				if t, ok := commits[p.ID]; ok {
					fn(k, seq, r.AtMicros[i]*1000, t)
				}
			}
		}
	}
}

// exactlyOnce prints a phase's exactly-once check and fails the phase
// when it did not pass.
func exactlyOnce(prog *progress, phase string, c cluster.Check) error {
	prog.Printf("%s: %s", phase, c)
	if c.OK() {
		return nil
	}
	return fmt.Errorf("%s: exactly-once violated: %s %v", phase, c, c.Examples)
}

// prefixWriter writes each line to w with prefix.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	return cluster.LineWriter(func(line string) { fmt.Fprintf(w, "%s%s\n", prefix, line) })
}

// doJSON sends a request with header and body (JSON, when not nil),
// wants status back, and decodes the answer into out when not nil.
func doJSON(ctx context.Context, client *http.Client, method, url string, header http.Header, body []byte, status int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if header != nil {
		req.Header = header.Clone()
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var b []byte
		if b, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err == nil && resp.StatusCode != status {
			err = fmt.Errorf("%s: %.300s", resp.Status, bytes.TrimSpace(b))
		}
		if err == nil && out != nil {
			err = json.Unmarshal(b, out)
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}
