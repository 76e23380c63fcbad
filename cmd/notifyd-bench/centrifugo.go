package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

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
