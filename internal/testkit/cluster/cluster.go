// Package cluster runs notifyd the way a deployment does: as separate
// processes of the built binary, several nodes on one database. Tests and
// the benchmark (cmd/notifyd-bench) use it for what an in-process server
// cannot show: a node killed with SIGKILL, each node's resident memory and
// CPU read from /proc, and clients that resume on another node.
//
// Besides starting nodes (StartNode, StartNodes, and the OpenID Connect
// Issuer they trust) and reading them (/proc figures, Prometheus Samples),
// it holds the client side those callers share: a stream Reader that
// follows one identity across connections and nodes (Last-Event-ID
// resumes, random or forced), the load's Population and target Mix, and the
// exactly-once check of what each reader received against the
// notifications in the database. Package fleet spreads readers over client
// processes when one process cannot hold them all.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinaryPackage is the package Build compiles.
const BinaryPackage = "github.com/notifyd/notifyd/cmd/notifyd"

// Build compiles cmd/notifyd into dir and returns the binary's path. It must
// run inside the module (the go command finds it from the working
// directory); flags are extra `go build` flags such as -race. The go command
// is $GO, or go on the PATH.
func Build(ctx context.Context, dir string, flags ...string) (string, error) {
	gocmd := os.Getenv("GO")
	if gocmd == "" {
		gocmd = "go"
	}
	bin := filepath.Join(dir, "notifyd")
	args := append([]string{"build", "-o", bin}, flags...)
	args = append(args, BinaryPackage)
	cmd := exec.CommandContext(ctx, gocmd, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build notifyd: %s %s: %w\n%s", gocmd, strings.Join(args, " "), err, out)
	}
	return bin, nil
}
