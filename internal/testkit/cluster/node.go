package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NodeConfig describes one notifyd process.
type NodeConfig struct {
	// Binary is the notifyd executable (from Build). Required.
	Binary string
	// DatabaseURL is the database every node shares (DATABASE_URL). Required.
	DatabaseURL string
	// Addr is the listen address (NOTIFY_ADDR). Default: a free port on IP.
	Addr string
	// IP is where a default Addr listens. Default 127.0.0.1; any 127.0.0.x
	// works on Linux, which spreads loopback connections over more
	// (source, destination) pairs than one address has ports for.
	IP string
	// Env holds further settings, e.g. NOTIFY_HEARTBEAT_INTERVAL or
	// OIDC_ISSUER_URL. The process does not inherit the caller's NOTIFY_*,
	// OIDC_* or DATABASE_URL.
	Env map[string]string
	// Log receives the node's output (stdout and stderr). Default: kept in
	// memory only for error messages.
	Log io.Writer
	// ReadyTimeout bounds the wait for /readyz. Default 60s.
	ReadyTimeout time.Duration
}

// Node is a running notifyd process.
type Node struct {
	Addr string
	cfg  NodeConfig
	cmd  *exec.Cmd
	tail *tailBuffer
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// StartNode starts `notifyd serve` and returns once its /readyz answers 200
// (database, schema and listener ready).
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.Binary == "" || cfg.DatabaseURL == "" {
		return nil, errors.New("start node: Binary and DatabaseURL are required")
	}
	var lastErr error
	for range 3 { // a free port can be taken between choosing and binding it
		addr := cfg.Addr
		if addr == "" {
			var err error
			if addr, err = FreeAddr(cfg.IP); err != nil {
				return nil, err
			}
		}
		n, err := startNode(ctx, cfg, addr)
		if err == nil || cfg.Addr != "" || !strings.Contains(err.Error(), "address already in use") {
			return n, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func startNode(ctx context.Context, cfg NodeConfig, addr string) (*Node, error) {
	n := &Node{Addr: addr, cfg: cfg, tail: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	n.cmd = exec.Command(cfg.Binary, "serve")
	n.cmd.Env = nodeEnv(cfg, addr)
	var out io.Writer = n.tail
	if cfg.Log != nil {
		out = io.MultiWriter(cfg.Log, n.tail)
	}
	n.cmd.Stdout, n.cmd.Stderr = out, out
	// Its own process group: a Ctrl-C to the caller's terminal is the
	// caller's to handle, and a killed node takes nothing else with it.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", addr, err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.done) }()
	timeout := cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := n.waitReady(ctx, timeout); err != nil {
		_ = n.Kill()
		return nil, fmt.Errorf("start node %s: %w\n%s", addr, err, n.tail.String())
	}
	return n, nil
}

func nodeEnv(cfg NodeConfig, addr string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NOTIFY_") || strings.HasPrefix(k, "OIDC_") || k == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "DATABASE_URL="+cfg.DatabaseURL, "NOTIFY_ADDR="+addr)
	for k, v := range cfg.Env {
		env = append(env, k+"="+v)
	}
	return env
}

func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	return WaitOK(ctx, n.URL()+"/readyz", n.done, func() error { return n.err }, timeout)
}

// WaitOK polls url until it answers 200, for a process that has just been
// started: it gives up when the process exits (exited is closed; exitErr
// then says why), when ctx ends or after timeout.
func WaitOK(ctx context.Context, url string, exited <-chan struct{}, exitErr func() error, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready: %v", exitErr())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", timeout)
		}
	}
}

// Restart starts the node again, once its process has exited (Kill, Stop),
// on the same address with the same settings, as a supervisor brings a
// crashed or stopped service back: its clients find it where they left it.
// It returns the new process once /readyz answers 200.
func (n *Node) Restart(ctx context.Context) (*Node, error) {
	select {
	case <-n.done:
	default:
		return nil, fmt.Errorf("restart node %s: it is still running", n.Addr)
	}
	return startNode(ctx, n.cfg, n.Addr)
}

// URL is the node's base URL.
func (n *Node) URL() string { return "http://" + n.Addr }

// PID is the node's process id.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Done is closed when the process has exited.
func (n *Node) Done() <-chan struct{} { return n.done }

// Running reports whether the process has not exited yet.
func (n *Node) Running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would:
// no shutdown message to its streams, no release of its claims. It returns
// once the process is gone.
func (n *Node) Kill() error {
	if !n.Running() {
		return nil
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill node %s: %w", n.Addr, err)
	}
	<-n.done
	return nil
}

// Stop asks the process to shut down gracefully (SIGTERM) and kills it if
// it has not exited within timeout. It reports an unclean exit.
func (n *Node) Stop(timeout time.Duration) error {
	select {
	case <-n.done:
		return n.exitErr()
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.exitErr()
	case <-time.After(timeout):
		_ = n.Kill()
		return fmt.Errorf("node %s did not stop within %s; killed", n.Addr, timeout)
	}
}

func (n *Node) exitErr() error {
	if n.err != nil {
		return fmt.Errorf("node %s: %w\n%s", n.Addr, n.err, n.tail.String())
	}
	return nil
}

// RSS is the node's resident memory in bytes.
func (n *Node) RSS() (int64, error) { return RSS(n.PID()) }

// CPUTime is the CPU the node has used so far.
func (n *Node) CPUTime() (time.Duration, error) { return CPUTime(n.PID()) }

// Metric reads one of the node's Prometheus metrics (the sum over labels).
func (n *Node) Metric(ctx context.Context, name string) (float64, error) {
	return Metric(ctx, http.DefaultClient, n.URL(), name)
}

// Output is the end of what the node has logged.
func (n *Node) Output() string { return n.tail.String() }

// FreeAddr returns ip:port with a port that was free a moment ago.
func FreeAddr(ip string) (string, error) {
	if ip == "" {
		ip = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
		if i := bytes.IndexByte(t.b, '\n'); i >= 0 {
			t.b = t.b[i+1:]
		}
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
