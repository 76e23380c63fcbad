package localdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// localServer is the machine's PostgreSQL (NOTES.md: every development and
// CI machine has one); tests that need it skip without it.
const localServer = "127.0.0.1:5432"

func needLocalServer(t *testing.T) {
	t.Helper()
	if err := checkConnect(t.Context(), serverURL("postgres", localServer, "postgres")); err != nil {
		t.Skipf("no PostgreSQL at %s: %v", localServer, err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dataDir is a fresh data directory path for a test. As root, PostgreSQL
// runs as the postgres account, which must be able to enter t.TempDir()'s
// parent; the testing package makes that 0700.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "pg")
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// queryInt runs a one-value query on a fresh connection to url.
func queryInt(t *testing.T, url, sql string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, sql).Scan(&n)
	return n, err
}

func mustExec(t *testing.T, url, sql string) {
	t.Helper()
	// Not t.Context(): cleanups run this, after that context has ended.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func mustQueryInt(t *testing.T, url, sql string) int {
	t.Helper()
	n, err := queryInt(t, url, sql)
	if err != nil {
		t.Fatalf("%s on %s: %v", sql, url, err)
	}
	return n
}
