package localdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// initDataDir makes the data directory usable by the server account and runs
// initdb in it unless a cluster is already there.
func (c *Cluster) initDataDir(ctx context.Context) error {
	dir := c.opts.DataDir
	// Parents searchable by all, so that the postgres account can pass
	// through the ones root creates; then check the ones that already were.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create parent of data dir: %w", err)
	}
	if err := c.acct.canReach(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create data dir: %w", err)
	}
	if fileExists(filepath.Join(dir, "PG_VERSION")) {
		return nil
	}
	// initdb insists on an empty directory it owns, mode 0700 or 0750.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod data dir: %w", err)
	}
	if err := c.acct.own(dir); err != nil {
		return err
	}
	c.opts.Logger.InfoContext(ctx, "initializing private PostgreSQL cluster",
		"data_dir", dir, "bin_dir", c.binDir, "run_as", c.acct.name)
	// Trust authentication and no fsync of the new files: this is a
	// development and test cluster that listens on 127.0.0.1 only. A C
	// locale makes it independent of the locales installed on the machine.
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"),
		"-D", dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.Dir = dir // initdb fails if it cannot read its working directory
	cmd.SysProcAttr = c.acct.sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", dir, err, lastLines(string(out), 20))
	}
	return nil
}

// lastLines keeps the end of a tool's output, where the reason it failed is.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
