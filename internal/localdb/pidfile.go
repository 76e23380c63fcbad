package localdb

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// postmaster.pid is how another process finds a running server on a data
// directory: PostgreSQL writes it at start and removes it at a clean stop.

// runningServer reads postmaster.pid: the postmaster's pid is on its first
// line, its port on the fourth and its socket directory on the fifth.
func runningServer(dataDir string) (pid, port int, ok bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil || pid <= 0 || processGone(pid) {
		return 0, 0, false
	}
	return pid, port, true
}

// socketDir is the unix socket directory of the server on dataDir (line 5
// of postmaster.pid), if it is one that spawn made.
func socketDir(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 {
		return ""
	}
	dir := strings.TrimSpace(lines[4])
	if !strings.HasPrefix(filepath.Base(dir), sockPrefix) || filepath.Dir(dir) != filepath.Clean(os.TempDir()) {
		return ""
	}
	return dir
}
