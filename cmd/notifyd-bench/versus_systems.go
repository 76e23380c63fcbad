package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/wire"
)

// versusSystem is one server the versus phase compares: how a stream opens
// and how one message is published. Everything else (the SSE reader, the
// pacing, the clock, the statistics) is the same code for both.
type versusSystem interface {
	// Name is the system's name in the report.
	Name() string
	// Open opens stream i and returns once the server has confirmed it
	// (notifyd's "connected" message, Centrifugo's connect push with the
	// subscription), so a message published afterwards reaches it.
	Open(ctx context.Context, i int) (*wire.Stream, error)
	// Publish sends message k to every stream; its payload carries
	// versusMarker(k).
	Publish(ctx context.Context, k int) error
	// ClockAtReturn says where a message's latency starts: when Publish
	// returned (notifyd: the INSERT committed) or when it was called
	// (Centrifugo: its broadcast happens inside the request, so a stream
	// can receive a message before the response arrives).
	ClockAtReturn() bool
	// PID is the server process, for its RSS.
	PID() int
}

// versusMarker is what a message's payload carries: its number, found
// again by versusMessage in either system's event.
func versusMarker(k int) string { return "vs:" + strconv.Itoa(k) + ":" }

// versusMessage finds the number of the message an event carries; ok is
// false for other events (heartbeats, pings).
func versusMessage(data []byte) (k int, ok bool) {
	i := bytes.Index(data, []byte("vs:"))
	if i < 0 {
		return 0, false
	}
	rest := data[i+3:]
	j := bytes.IndexByte(rest, ':')
	if j <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:j]))
	return n, err == nil
}

// How the versus phase publishes notifyd's messages (-versus-publish).
const (
	versusInsert = "insert" // an autocommit INSERT, as producers write them; a worker publishes it
	versusSend   = "send"   // SELECT notify.send(...): born published in the producer's commit
	versusHTTP   = "http"   // POST /api/notifications, which sends born published
)

var versusPublishModes = []string{versusInsert, versusSend, versusHTTP}

// notifydVersus is one notifyd node; messages are notifications to
// everyone, published as mode says.
type notifydVersus struct {
	node   *cluster.Node
	pool   *pgxpool.Pool
	client *http.Client
	tokens []string // one user per stream
	mode   string   // versusPublishModes
	admin  string   // the publishing token (http)
}

func (n *notifydVersus) Name() string { return "notifyd" }

// ClockAtReturn: an INSERT's latency starts at its commit (the worker
// publishes afterwards); a born-published notification can reach a stream
// before its publish call returns, so its clock starts at the call, as
// Centrifugo's does.
func (n *notifydVersus) ClockAtReturn() bool { return n.mode == versusInsert }
func (n *notifydVersus) PID() int            { return n.node.PID() }

func (n *notifydVersus) Open(ctx context.Context, i int) (*wire.Stream, error) {
	return openConfirmed(ctx, n.client, n.node.URL()+cluster.StreamPath, http.Header{"Authorization": {"Bearer " + n.tokens[i%len(n.tokens)]}},
		fmt.Sprintf("notifyd stream %d", i), "connected", `"type":"connected"`)
}

// openConfirmed opens a stream and reads its first message, which must
// hold every one of confirm (what is named want in the error).
func openConfirmed(ctx context.Context, client *http.Client, url string, h http.Header, what, want string, confirm ...string) (*wire.Stream, error) {
	s, err := wire.Open(ctx, client, url, h)
	if err != nil {
		return nil, err
	}
	ev, err := s.Next()
	for _, c := range confirm {
		if err == nil && !bytes.Contains(ev.Data, []byte(c)) {
			err = fmt.Errorf("first message %.300q, want %s", ev.Data, want)
		}
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

func (n *notifydVersus) Publish(ctx context.Context, k int) error {
	switch n.mode {
	case versusSend:
		if _, err := n.pool.Exec(ctx, `SELECT notify.send($1, module => 'versus')`, versusMarker(k)); err != nil {
			return fmt.Errorf("notifyd: notify.send: %w", err)
		}
	case versusHTTP:
		return n.post(ctx, k)
	default:
		if _, err := n.pool.Exec(ctx, `INSERT INTO notify.notifications (message, module) VALUES ($1, 'versus')`, versusMarker(k)); err != nil {
			return fmt.Errorf("notifyd: insert: %w", err)
		}
	}
	return nil
}

// post publishes message k over the HTTP API.
func (n *notifydVersus) post(ctx context.Context, k int) error {
	body := `{"message":"` + versusMarker(k) + `","module":"versus"}`
	return doJSON(ctx, n.client, http.MethodPost, n.node.URL()+"/api/notifications", http.Header{"Authorization": {"Bearer " + n.admin}},
		[]byte(body), http.StatusCreated, nil)
}

// centrifugoVersus is one Centrifugo; messages go through its HTTP API's
// publish to the one channel every stream subscribed to when connecting.
type centrifugoVersus struct {
	c      *centrifugo
	client *http.Client
}

func (c *centrifugoVersus) Name() string        { return "centrifugo" }
func (c *centrifugoVersus) ClockAtReturn() bool { return false }
func (c *centrifugoVersus) PID() int            { return c.c.PID() }

// centrifugoConnect is the connect request of every stream: anonymous, a
// server-side subscription to the channel.
var centrifugoConnect = url.QueryEscape(`{"subs":{"` + centrifugoChannel + `":{}}}`)

func (c *centrifugoVersus) Open(ctx context.Context, i int) (*wire.Stream, error) {
	return openConfirmed(ctx, c.client, c.c.URL+"/connection/uni_sse?cf_connect="+centrifugoConnect, nil, fmt.Sprintf("centrifugo stream %d", i),
		fmt.Sprintf("a connect push subscribing to %q", centrifugoChannel), `"connect"`, `"`+centrifugoChannel+`"`)
}

func (c *centrifugoVersus) Publish(ctx context.Context, k int) error {
	body := `{"channel":"` + centrifugoChannel + `","data":{"m":"` + versusMarker(k) + `"}}`
	var answer struct {
		Error json.RawMessage `json:"error"`
	}
	err := doJSON(ctx, c.client, http.MethodPost, c.c.URL+"/api/publish", http.Header{"X-API-Key": {c.c.APIKey}}, []byte(body), http.StatusOK, &answer)
	if err == nil && answer.Error != nil {
		err = fmt.Errorf("centrifugo: publish answered %s", answer.Error)
	}
	return err
}

// centrifugoVersion is the release ./centrifugo/go.mod pins: the one issue 15
// compares notifyd with.
const centrifugoVersion = "v6.9.1"

// centrifugoPackage is the main package built from the pinned module.
const centrifugoPackage = "github.com/centrifugal/centrifugo/v6"

// centrifugoChannel is the one channel every versus stream subscribes to:
// a broadcast, as notifyd's streams get a notification to everyone.
const centrifugoChannel = "versus"

// buildCentrifugo compiles Centrifugo from the module in ./centrifugo (a
// module of its own, so its dependencies stay out of notifyd's go.mod and
// ./...) into dir. The first build on a machine downloads its modules and
// compiles them (minutes); it prints progress meanwhile. Later builds come
// from the Go build cache in seconds.
func buildCentrifugo(ctx context.Context, dir string, prog *progress) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("build centrifugo: cannot locate the bench's source directory (built with -trimpath? pass -centrifugo-bin)")
	}
	src := filepath.Join(filepath.Dir(file), "centrifugo")
	gocmd := os.Getenv("GO")
	if gocmd == "" {
		gocmd = "go"
	}
	bin := filepath.Join(dir, "centrifugo")
	cmd := exec.CommandContext(ctx, gocmd, "build", "-C", src, "-o", bin, centrifugoPackage)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	stop := prog.Every(20*time.Second, func() string {
		return fmt.Sprintf("versus: still building Centrifugo %s (%s so far; the first build on a machine takes minutes)",
			centrifugoVersion, time.Since(start).Round(time.Second))
	})
	out, err := cmd.CombinedOutput()
	stop()
	if err != nil {
		return "", fmt.Errorf("build centrifugo %s (go build -C %s %s): %w\n%s", centrifugoVersion, src, centrifugoPackage, err, out)
	}
	prog.Printf("versus: built Centrifugo %s in %.1f s", centrifugoVersion, time.Since(start).Seconds())
	return bin, nil
}

// centrifugo is a running Centrifugo: the memory broker (nothing on disk),
// its unidirectional SSE transport, anonymous connections that may
// subscribe to channels without a namespace (a bench has no users to
// authenticate; a real deployment would sign connection tokens with the
// HMAC secret it is given too), and the HTTP API behind a key.
type centrifugo struct {
	*testkit.Process
	URL    string
	APIKey string
	pid    int
}

// startCentrifugo runs bin with a configuration written into dir, on a
// free loopback port, and returns once its health endpoint answers.
func startCentrifugo(ctx context.Context, bin, dir string, log io.Writer) (*centrifugo, error) {
	var lastErr error
	for range 3 { // a free port may be taken before Centrifugo binds it
		addr, err := cluster.FreeAddr("127.0.0.1")
		if err != nil {
			return nil, err
		}
		c, err := runCentrifugo(ctx, bin, dir, addr, log)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func runCentrifugo(ctx context.Context, bin, dir, addr string, log io.Writer) (*centrifugo, error) {
	host, port, _ := net.SplitHostPort(addr)
	portN, _ := strconv.Atoi(port)
	c := &centrifugo{URL: "http://" + addr, APIKey: randomHex(16)}
	conf := map[string]any{
		"http_server": map[string]any{"address": host, "port": portN},
		"log":         map[string]any{"level": "error"},
		"engine":      map[string]any{"type": "memory"},
		"client": map[string]any{
			"allow_anonymous_connect_without_token": true,
			"token":                                 map[string]any{"hmac_secret_key": randomHex(32)},
		},
		"channel": map[string]any{"without_namespace": map[string]any{
			"allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true,
		}},
		"http_api":    map[string]any{"key": c.APIKey},
		"uni_sse":     map[string]any{"enabled": true},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write centrifugo's configuration: %w", err)
	}
	var tail strings.Builder // the first 8 KiB of its output, for a start that fails
	var mu sync.Mutex
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout = cluster.LineWriter(func(line string) {
		mu.Lock()
		if tail.Len() < 8<<10 {
			tail.WriteString(line + "\n")
		}
		mu.Unlock()
		fmt.Fprintln(log, line)
	})
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as notifyd's nodes: a Ctrl-C is the bench's to handle
	if c.Process, err = testkit.StartProcess(cmd); err != nil {
		return nil, err
	}
	c.pid = cmd.Process.Pid
	if err := cluster.WaitOK(ctx, c.URL+"/health", c.Exited(), c.ExitErr, 30*time.Second); err != nil {
		c.Stop(syscall.SIGKILL, 0)
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("start centrifugo on %s: %w\n%s", addr, err, tail.String())
	}
	return c, nil
}

// PID is the Centrifugo process's id.
func (c *centrifugo) PID() int { return c.pid }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
