package app_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/apptest"
)

// TestStalledClientIsDropped: a client that stops reading is closed by the
// sweep once no write has succeeded for the connection timeout, while
// another stream keeps receiving.
func TestStalledClientIsDropped(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	env := apptest.NewEnv(t)
	cfg := env.Config()
	cfg.Stream.HeartbeatInterval = 50 * time.Millisecond
	cfg.Stream.ConnTimeout = 500 * time.Millisecond
	cfg.Stream.CleanupInterval = 100 * time.Millisecond
	srv := env.Start(cfg)

	// A raw client with a tiny receive buffer that never reads the body.
	conn, err := net.DialTCP("tcp", nil, mustResolve(t, srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/notifications/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", env.Token("stuck"))
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, "200") {
		t.Fatalf("stream answer %q, %v", status, err)
	}
	healthy := apptest.Open(t, srv.URL(), env.Token("healthy"), "")

	// Fill the stuck client's socket: large broadcasts.
	big := strings.Repeat("x", 30000)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for srv.OpenStreams() > 1 && time.Now().Before(deadline) {
		if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (message, data)
			SELECT 'big', jsonb_build_object('pad', $1::text) FROM generate_series(1, 20)`, big); err != nil {
			t.Fatal(err)
		}
		healthy.Notifications(20, 10*time.Second)
	}
	if n := srv.OpenStreams(); n != 1 {
		t.Fatalf("%d streams open, want only the healthy one", n)
	}
	// The healthy stream still works.
	if _, err := env.DB.Pool.Exec(ctx, `INSERT INTO notify.notifications (message) VALUES ('after')`); err != nil {
		t.Fatal(err)
	}
	for {
		m := healthy.Notifications(1, 10*time.Second)[0]
		if m.Notification().Message == "after" {
			break
		}
	}
}

func mustResolve(t *testing.T, addr string) *net.TCPAddr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
