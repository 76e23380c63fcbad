package localdb

import (
	"context"
	"fmt"
	"time"
)

// stopTimeout bounds a fast shutdown when the caller's context has no
// deadline: a server that cannot stop in this long is killed.
const stopTimeout = 60 * time.Second

// Stop shuts the server down fast (SIGINT: open transactions roll back and
// clients are disconnected) and waits for it to exit, killing it if ctx ends
// first. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(ctx)
}

// Restart stops the server if it runs and starts it again on the same port
// and data directory, as a fault test does to PostgreSQL under load. It also
// brings a cluster back after Kill, through crash recovery.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(ctx); err != nil {
		return fmt.Errorf("restart cluster: %w", err)
	}
	if err := c.startLocked(ctx); err != nil {
		return fmt.Errorf("restart cluster: %w", err)
	}
	return nil
}

// Kill crashes the server: SIGKILL to the postmaster and its backends, with
// no shutdown checkpoint. It returns once they are all gone, so a Restart can
// follow at once. Killing a stopped cluster does nothing.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	pid := c.proc.cmd.Process.Pid
	gone := c.proc.kill()
	c.proc = nil
	if !gone {
		return fmt.Errorf("kill cluster: backends of postmaster %d still running", pid)
	}
	c.opts.Logger.Info("killed private PostgreSQL cluster", "data_dir", c.opts.DataDir, "pid", pid)
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startLocked(ctx)
}

func (c *Cluster) startLocked(ctx context.Context) error {
	p, err := c.spawn()
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, p); err != nil {
		return err
	}
	c.proc = p
	c.opts.Logger.InfoContext(ctx, "started private PostgreSQL cluster",
		"data_dir", c.opts.DataDir, "port", c.port, "pid", p.cmd.Process.Pid)
	return nil
}

func (c *Cluster) stopLocked(ctx context.Context) error {
	if c.proc == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stopTimeout)
		defer cancel()
	}
	pid := c.proc.cmd.Process.Pid
	err := c.proc.stop(ctx)
	c.proc = nil
	if err != nil {
		return fmt.Errorf("stop cluster: %w", err)
	}
	c.opts.Logger.InfoContext(ctx, "stopped private PostgreSQL cluster", "data_dir", c.opts.DataDir, "pid", pid)
	return nil
}

// waitGone polls until every pid has exited or the timeout passes.
func waitGone(pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for !processGone(pid) {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return true
}
