// Package pgbouncertest runs a private PgBouncer in transaction mode in
// front of the test PostgreSQL server (package pgtest), so that tests can
// run notifyd the way it runs behind a transaction pooler in production.
//
// Each Start is its own pgbouncer process, on a free loopback port, with its
// configuration in the test's temporary directory; the system's pgbouncer
// service is never used. The configuration is PgBouncer's defaults apart
// from what a private instance needs (address, port, authentication,
// pool_mode = transaction and a small pool): in particular
// ignore_startup_parameters is left empty, as it is out of the box, so a
// client that sends startup parameters PgBouncer does not know fails here.
//
// The pgbouncer binary is Debian's package (apt-get install pgbouncer;
// .ci/run installs it). Without it the tests fail and say so.
package pgbouncertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifyd/notifyd/internal/testkit"
	"github.com/notifyd/notifyd/internal/testkit/pgtest"
)

// PoolSize is the server connections the bouncer opens per database: small,
// so that notifyd's client connections share them, as they do in
// production, and state left on a server connection by one client (a named
// prepared statement, a session lock, a LISTEN) meets another.
const PoolSize = 3

// Bouncer is a running pgbouncer.
type Bouncer struct {
	// Addr is where it listens (127.0.0.1:port).
	Addr string
	user string
	pw   string
	mu   sync.Mutex
	log  bytes.Buffer
}

// Start runs a pgbouncer in transaction mode in front of pgtest's server
// until t ends.
func Start(t testing.TB) *Bouncer {
	t.Helper()
	bin := binary()
	if bin == "" {
		t.Fatalf("pgbouncer is not installed: the PgBouncer tests run a private one in transaction mode; " +
			"install it with `apt-get install pgbouncer` (.ci/run does)")
	}
	server, err := pgconn.ParseConfig(pgtest.ServerURL())
	if err != nil {
		t.Fatalf("parse the test server url: %v", err)
	}
	dir, acct := workDir(t)
	var lastErr error
	for range 5 { // the free port may be taken before pgbouncer binds it
		port := testkit.FreePort(t)
		b := &Bouncer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), user: server.User, pw: server.Password}
		ini := writeConfig(t, dir, acct, server, port)
		if lastErr = b.run(t, bin, ini, acct); lastErr == nil {
			return b
		}
	}
	t.Fatalf("start pgbouncer: %v", lastErr)
	return nil
}

// URL is the connection string of database through the bouncer.
func (b *Bouncer) URL(database string) string {
	pw := ""
	if b.pw != "" {
		pw = ":" + b.pw
	}
	return fmt.Sprintf("postgres://%s%s@%s/%s?sslmode=disable", b.user, pw, b.Addr, database)
}

// Log is what pgbouncer has logged so far, for failure messages.
func (b *Bouncer) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// Write collects pgbouncer's output (it logs to stderr).
func (b *Bouncer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.Write(p)
}

// run starts pgbouncer with ini and waits until it accepts a connection to
// the server's maintenance database through it.
func (b *Bouncer) run(t testing.TB, bin, ini string, acct *user.User) error {
	t.Helper()
	cmd := exec.Command(bin, ini)
	cmd.Stdout, cmd.Stderr = b, b
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if acct != nil {
		uid, _ := strconv.ParseUint(acct.Uid, 10, 32)
		gid, _ := strconv.ParseUint(acct.Gid, 10, 32)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		return err
	}
	stop := func() { proc.Stop(syscall.SIGTERM, 10*time.Second) } // immediate shutdown
	server, _ := pgconn.ParseConfig(pgtest.ServerURL())
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-proc.Exited():
			return fmt.Errorf("pgbouncer exited (%v):\n%s", proc.ExitErr(), b.Log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, b.URL(server.Database))
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			err = b.isOurs(ini)
		}
		if err == nil {
			t.Cleanup(stop)
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("pgbouncer at %s does not answer: %v\n%s", b.Addr, err, b.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isOurs checks that the bouncer answering at b.Addr runs with ini: the
// free port handed out may be handed to a parallel test's bouncer too, and
// then one of the two fails to bind it and exits while its probe reaches
// the other, which goes away when that test ends (a CI run saw a test's
// bouncer refuse connections mid-test). PgBouncer's admin console says
// which configuration file it runs.
func (b *Bouncer) isOurs(ini string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.URL("pgbouncer")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		return fmt.Errorf("connect to the admin console: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW CONFIG")
	if err != nil {
		return fmt.Errorf("show config: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return fmt.Errorf("show config: %w", err)
		}
		if len(vals) >= 2 && fmt.Sprint(vals[0]) == "conffile" {
			if got := fmt.Sprint(vals[1]); got != ini {
				return fmt.Errorf("the bouncer at %s runs %s, not %s", b.Addr, got, ini)
			}
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("show config: %w", err)
	}
	return fmt.Errorf("the bouncer at %s does not say its configuration file", b.Addr)
}

// binary finds pgbouncer; Debian installs it in /usr/sbin, which is not on
// every user's PATH.
func binary() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// workDir is a directory for the configuration. pgbouncer refuses to run as
// root, so as root it runs as the postgres account (acct), which must be
// able to read the directory; otherwise acct is nil.
func workDir(t testing.TB) (string, *user.User) {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir, nil
	}
	acct, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("pgbouncer refuses to run as root, and there is no postgres account to run it as: %v", err)
	}
	// t.TempDir's parent is private to root: pgbouncer gets a directory of its own.
	dir, err = os.MkdirTemp("", "notifyd-pgbouncer-")
	if err != nil {
		t.Fatalf("create pgbouncer directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := chown(dir, acct); err != nil {
		t.Fatalf("hand the pgbouncer directory to postgres: %v", err)
	}
	return dir, acct
}

func chown(path string, acct *user.User) error {
	if acct == nil {
		return nil
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	return os.Chown(path, uid, gid)
}

// writeConfig writes pgbouncer.ini and its user list for port, forwarding
// every database to the test server.
func writeConfig(t testing.TB, dir string, acct *user.User, server *pgconn.Config, port int) string {
	t.Helper()
	users := filepath.Join(dir, "userlist.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	password := ""
	if server.Password != "" {
		password = " password=" + server.Password
	}
	files := map[string]string{
		// auth_type = trust still wants the user listed.
		users: fmt.Sprintf("%q %q\n", server.User, server.Password),
		ini: fmt.Sprintf(`[databases]
* = host=%s port=%d user=%s%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
admin_users = %s
`, server.Host, server.Port, server.User, password, port, users, PoolSize, server.User),
	}
	for path, body := range files {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		if err := chown(path, acct); err != nil {
			t.Fatalf("hand %s to postgres: %v", path, err)
		}
	}
	return ini
}
