package localdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Failover and restore tests need what operators do to a database: copy it
// with pg_basebackup into a streaming replica, promote the replica when the
// primary dies, dump and restore it. These helpers run the cluster's own
// binaries (so client and server versions agree) as the server account.

// Tool is the path of a PostgreSQL program of the cluster's installation
// (pg_dump, pg_restore, psql, pg_basebackup).
func (c *Cluster) Tool(name string) string { return filepath.Join(c.binDir, name) }

// StartStandby makes a streaming replica of primary in opts.DataDir (which
// must not hold a cluster yet) with pg_basebackup, and starts it: it
// replays what the primary writes until Promote. opts.BinDir is ignored:
// the primary's installation is used.
func StartStandby(ctx context.Context, primary *Cluster, opts ClusterOptions) (*Cluster, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	opts.DataDir = dataDir
	c := &Cluster{opts: opts, binDir: primary.binDir, acct: primary.acct, port: opts.Port}
	if err := c.baseBackup(ctx, primary); err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("start standby: %w", err)
		}
	}
	if err := c.start(ctx); err != nil {
		return nil, fmt.Errorf("start standby: %w", err)
	}
	return c, nil
}

// baseBackup copies primary into c's empty data directory, with the
// settings that make it a standby of primary (pg_basebackup -R).
func (c *Cluster) baseBackup(ctx context.Context, primary *Cluster) error {
	dir := c.opts.DataDir
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create parent of data dir: %w", err)
	}
	if err := c.acct.canReach(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("data dir %s exists already: a standby starts from an empty one", dir)
		}
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := c.acct.own(dir); err != nil {
		return err
	}
	// pg_basebackup copies every file of the primary's data directory, as
	// the server account: the server log this process opened there too.
	if err := c.acct.own(filepath.Join(primary.opts.DataDir, logName)); err != nil {
		return err
	}
	c.opts.Logger.InfoContext(ctx, "copying the primary into a standby", "data_dir", dir, "primary_port", primary.port)
	cmd := exec.CommandContext(ctx, c.Tool("pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port),
		"-U", "postgres", "-D", dir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	cmd.Dir = dir
	cmd.SysProcAttr = c.acct.sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_basebackup from port %d: %w\n%s", primary.port, err, lastLines(string(out), 20))
	}
	return nil
}

// Promote ends a standby's recovery and waits until it accepts writes: it
// becomes a primary on a new timeline, as an operator's failover does.
func (c *Cluster) Promote(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var done bool
	secs := max(int(time.Until(deadlineOf(ctx)).Seconds()), 1)
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, $1)", secs).Scan(&done); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !done {
		return fmt.Errorf("promote: the standby on port %d did not finish promoting within %ds", c.port, secs)
	}
	c.opts.Logger.InfoContext(ctx, "promoted standby", "data_dir", c.opts.DataDir, "port", c.port)
	return nil
}

// deadlineOf is ctx's deadline, which the caller set.
func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
