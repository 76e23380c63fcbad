package localdb

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultDataDir is where Resolve keeps its private cluster: notifyd/pg in
// the user's cache directory ($XDG_CACHE_HOME, else ~/.cache), so that it
// survives between runs but is obviously safe to delete. As root, PostgreSQL
// runs as the postgres account, which usually cannot enter /root; root's
// default is then ~postgres/.cache/notifyd/pg instead.
func DefaultDataDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("default data dir: %w", err)
	}
	dir := filepath.Join(cache, "notifyd", "pg")
	if os.Geteuid() != 0 {
		return dir, nil
	}
	acct, err := serverAccount()
	if err != nil {
		return "", fmt.Errorf("default data dir: %w", err)
	}
	if acct.canReach(dir) == nil || acct.home == "" {
		return dir, nil
	}
	return filepath.Join(acct.home, ".cache", "notifyd", "pg"), nil
}

// DefaultBinDirs lists where PostgreSQL's server binaries usually are, best
// first: what `pg_config --bindir` says, then /usr/lib/postgresql/<version>/bin
// newest version first (Debian and Ubuntu keep initdb off PATH there), then
// every directory on PATH.
func DefaultBinDirs(ctx context.Context) []string {
	var dirs []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versioned, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	dirs = append(dirs, versioned...)
	dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))...)
	return dedupe(dirs)
}

// findBinDir returns the first directory holding both initdb and postgres:
// they must come from the same installation, or initdb makes a data
// directory the server refuses.
func findBinDir(dirs []string) (string, bool) {
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, true
		}
	}
	return "", false
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// compareVersions orders dotted version numbers numerically ("9.6" < "15");
// anything that is not a number sorts first.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func dedupe(dirs []string) []string {
	seen := make(map[string]bool, len(dirs))
	out := dirs[:0:0]
	for _, d := range dirs {
		if d == "" {
			continue
		}
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}
