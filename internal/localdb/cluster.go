package localdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// DataDir holds the cluster; required. initdb runs only when it has no
	// PG_VERSION, so a second start reuses the data.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one. Restart keeps it.
	Port int
	// BinDir holds initdb and postgres; empty searches DefaultBinDirs.
	BinDir string
	// Fast turns off fsync, full_page_writes and synchronous_commit: much
	// faster, and safe against a crash of PostgreSQL (Kill) but not of the
	// machine. For tests only.
	Fast bool
	// StartTimeout bounds the wait for the server to accept connections;
	// default 60s.
	StartTimeout time.Duration
	// Logger receives lifecycle events; default discards them.
	Logger *slog.Logger

	// detached leaves the server running if this process dies: Resolve's
	// shared cluster outlives any one of its users.
	detached bool
}

func (o ClusterOptions) withDefaults() ClusterOptions {
	o.StartTimeout = cmp.Or(o.StartTimeout, 60*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

func (o ClusterOptions) validate() error {
	if o.DataDir == "" {
		return errors.New("DataDir is required")
	}
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("Port %d is out of range", o.Port)
	}
	return nil
}

// Cluster is a PostgreSQL server run by this process, listening only on
// 127.0.0.1, with trust authentication for the superuser postgres. Its
// methods are safe for concurrent use.
type Cluster struct {
	opts   ClusterOptions
	binDir string
	acct   account
	port   int

	mu   sync.Mutex
	proc *serverProc // nil while stopped
}

// StartCluster initializes the data directory if needed and starts a server
// on it, returning once it accepts connections.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	opts.DataDir = dataDir
	c := &Cluster{opts: opts, binDir: opts.BinDir, port: opts.Port}
	if c.binDir == "" {
		dirs := DefaultBinDirs(ctx)
		var ok bool
		if c.binDir, ok = findBinDir(dirs); !ok {
			return nil, fmt.Errorf("start cluster: %w", notFoundError("", nil, dirs))
		}
	}
	if c.acct, err = serverAccount(); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	if err := c.initDataDir(ctx); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
	}
	if err := c.start(ctx); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	return c, nil
}

// URL is the connection string for database dbname as the superuser.
func (c *Cluster) URL(dbname string) string { return clusterURL(c.port, dbname) }

// clusterURL is the superuser's connection string for database dbname on a
// private cluster listening on port.
func clusterURL(port int, dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port is the TCP port the server listens on, on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// PID is the postmaster's process id, or 0 while the server is stopped, so
// that tests can check it is really gone.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.cmd.Process.Pid
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// fileExists reports whether path exists; other errors count as "no", and
// the operation that needs the file reports them.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
