package localdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// sharedCluster is this process's use of Resolve's private cluster. Its data
// directory is shared: the test binaries of one `go test ./...` and a
// `notifyd serve` may all fall back to it at once, and only one postmaster can
// run on a data directory.
//
// Two flock(2) files beside the data directory coordinate them. "<dir>.lock"
// is held while a process starts, adopts or stops the server; "<dir>.users"
// is held shared by every process using it, so whoever closes last, finding
// it can lock it exclusively, stops the server. The kernel drops the locks of
// a process that dies, so a crashed user never blocks the others.
type sharedCluster struct {
	dataDir string
	port    int
	users   *os.File
	own     *Cluster // set when this process started the server
	logger  *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// openShared adopts the server running on opts.DataDir or starts one.
func openShared(ctx context.Context, opts ClusterOptions) (*sharedCluster, error) {
	opts = opts.withDefaults()
	opts.detached = true
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	opts.DataDir = dataDir
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return nil, fmt.Errorf("create parent of data dir: %w", err)
	}
	lock, err := lockFile(ctx, dataDir+".lock", syscall.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer lock.Close() // closing releases the lock
	users, err := lockFile(ctx, dataDir+".users", syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	s := &sharedCluster{dataDir: dataDir, users: users, logger: opts.Logger}
	if pid, port, ok := runningServer(dataDir); ok {
		s.port = port
		if err := checkConnect(ctx, s.url("postgres")); err != nil {
			users.Close()
			return nil, fmt.Errorf("data dir %s is in use by postgres pid %d, which does not answer on port %d: %w", dataDir, pid, port, err)
		}
		s.logger.InfoContext(ctx, "joined running private PostgreSQL cluster", "data_dir", dataDir, "port", port, "pid", pid)
		return s, nil
	}
	if s.own, err = StartCluster(ctx, opts); err != nil {
		users.Close()
		return nil, err
	}
	s.port = s.own.Port()
	return s, nil
}

func (s *sharedCluster) url(dbname string) string {
	return clusterURL(s.port, dbname)
}

// close leaves the cluster, stopping the server if no other process uses it.
// Only the first call does anything.
func (s *sharedCluster) close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.leave(ctx) })
	return s.closeErr
}

func (s *sharedCluster) leave(ctx context.Context) error {
	lock, err := lockFile(ctx, s.dataDir+".lock", syscall.LOCK_EX)
	if err != nil {
		return fmt.Errorf("close private cluster: %w", err)
	}
	defer lock.Close()
	defer s.users.Close()
	if err := syscall.Flock(int(s.users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		s.logger.InfoContext(ctx, "left private PostgreSQL cluster running for its other users", "data_dir", s.dataDir)
		return nil
	}
	if s.own != nil {
		return s.own.Stop(ctx)
	}
	if err := stopByPID(ctx, s.dataDir); err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "stopped private PostgreSQL cluster", "data_dir", s.dataDir)
	return nil
}

// stopByPID fast-stops a server that another process started.
func stopByPID(ctx context.Context, dataDir string) error {
	pid, _, ok := runningServer(dataDir)
	if !ok {
		return nil
	}
	sockDir := socketDir(dataDir)
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop private cluster pid %d: %w", pid, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stopTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	if !waitGone([]int{pid}, time.Until(deadline)) {
		return fmt.Errorf("stop private cluster pid %d: still running at the deadline", pid)
	}
	if sockDir != "" {
		os.RemoveAll(sockDir) // its owner, which would have, may be gone
	}
	return nil
}
