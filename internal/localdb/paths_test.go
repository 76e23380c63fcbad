package localdb

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	got := []string{"15", "9.6", "16", "10", "9.5"}
	slices.SortFunc(got, compareVersions)
	if want := []string{"9.5", "9.6", "10", "15", "16"}; !slices.Equal(got, want) {
		t.Errorf("sorted = %v, want %v", got, want)
	}
}

func TestFindBinDirNeedsBothBinaries(t *testing.T) {
	t.Parallel()
	onlyInitdb, both := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(onlyInitdb, "initdb"), filepath.Join(both, "initdb"), filepath.Join(both, "postgres")} {
		if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok := findBinDir([]string{"", onlyInitdb, both}); !ok || got != both {
		t.Errorf("findBinDir = %q, %v; want %q", got, ok, both)
	}
	if _, ok := findBinDir(nil); ok {
		t.Error("found binaries in no directories")
	}
}

func TestDefaultBinDirsFindsThisMachinesServer(t *testing.T) {
	t.Parallel()
	dir, ok := findBinDir(DefaultBinDirs(t.Context()))
	if !ok {
		t.Skip("no PostgreSQL binaries on this machine")
	}
	t.Logf("found initdb and postgres in %s", dir)
}
