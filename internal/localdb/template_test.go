package localdb

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind, such as the
// one that reaps a postmaster nobody stopped.
// It also removes the template data directory the cluster tests share.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(tidy{m})
}

type tidy struct{ m *testing.M }

func (t tidy) Run() int {
	defer func() {
		if template.dir != "" {
			os.RemoveAll(filepath.Dir(filepath.Dir(filepath.Dir(template.dir))))
		}
	}()
	return t.m.Run()
}

// template is one initdb'd data directory that cluster tests copy, because a
// copy takes a tenth of the time of initdb on these 2-core machines.
var template struct {
	once sync.Once
	dir  string
	err  error
}

// seededDataDir is dataDir with a fresh cluster already in it.
func seededDataDir(t *testing.T) string {
	t.Helper()
	template.once.Do(func() {
		parent, err := os.MkdirTemp("", "localdb-template-")
		if err == nil {
			err = os.Chmod(parent, 0o755)
		}
		if err != nil {
			template.err = err
			return
		}
		// Nested, as the default is: as root, initDataDir must create
		// parents that the postgres account can pass through.
		template.dir = filepath.Join(parent, "cache", "notifyd", "pg")
		c := &Cluster{opts: ClusterOptions{DataDir: template.dir}.withDefaults()}
		var ok bool
		if c.binDir, ok = findBinDir(DefaultBinDirs(context.Background())); !ok {
			template.err = errors.New("no PostgreSQL binaries")
			return
		}
		if c.acct, template.err = serverAccount(); template.err == nil {
			template.err = c.initDataDir(context.Background())
		}
	})
	if template.err != nil {
		t.Fatalf("template data dir: %v", template.err)
	}
	dir := dataDir(t)
	// cp -a keeps the owner (the postgres account, when we are root) and
	// the 0700 mode that the server insists on.
	if out, err := exec.Command("cp", "-a", template.dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy template data dir: %v\n%s", err, out)
	}
	return dir
}
