package localdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// logName is the server's log inside the data directory: next to the data
// it describes, and kept across runs so a failed start can be diagnosed.
const logName = "notifyd-server.log"

// sockPrefix names the private socket directories spawn makes in the
// system's temporary directory.
const sockPrefix = "notifyd-pg-"

// serverProc is one run of the postmaster.
type serverProc struct {
	cmd     *exec.Cmd
	sockDir string
	logPath string
	logFrom int64         // where this run's lines start in the log
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // how it exited; read only after done
}

// spawn starts the postmaster without waiting for it to accept connections.
// It listens on 127.0.0.1 only, with its unix socket in a private directory
// so that it never clashes with a system server's /var/run/postgresql.
func (c *Cluster) spawn() (*serverProc, error) {
	sockDir, err := os.MkdirTemp("", sockPrefix)
	if err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if err := c.acct.own(sockDir); err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	p := &serverProc{sockDir: sockDir, logPath: filepath.Join(c.opts.DataDir, logName), done: make(chan struct{})}
	logFile, err := os.OpenFile(p.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	if info, err := logFile.Stat(); err == nil {
		p.logFrom = info.Size()
	}
	args := []string{"-D", c.opts.DataDir, "-p", strconv.Itoa(c.port), "-k", sockDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_permissions=0700"}
	if c.opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	p.cmd = exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	p.cmd.Dir = c.opts.DataDir
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = c.acct.sysProcAttr()
	if !c.opts.detached {
		setParentDeathSignal(p.cmd.SysProcAttr)
	}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("run postgres: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls until the server accepts a connection, it exits, or the
// start timeout passes; a failure carries the end of the server log.
func (c *Cluster) waitReady(ctx context.Context, p *serverProc) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	defer cancel()
	// A connection attempt must not outlive the server: something else may
	// hold the port and accept without ever answering.
	attempts, stopAttempts := context.WithCancel(ctx)
	defer stopAttempts()
	go func() {
		select {
		case <-p.done:
			stopAttempts()
		case <-attempts.Done():
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, cancelAttempt := context.WithTimeout(attempts, 2*time.Second)
		conn, err := pgx.Connect(attempt, c.URL("postgres"))
		cancelAttempt()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-p.done:
			os.RemoveAll(p.sockDir)
			return fmt.Errorf("postgres exited while starting (%v); its log says:\n%s", p.waitErr, p.logTail())
		case <-ctx.Done():
			p.kill()
			return fmt.Errorf("postgres not ready on port %d: %w (last attempt: %v); its log says:\n%s",
				c.port, ctx.Err(), err, p.logTail())
		case <-tick.C:
		}
	}
}

// stop asks for a fast shutdown (SIGINT: roll back open transactions,
// disconnect clients, checkpoint) and kills the server if ctx ends first.
func (p *serverProc) stop(ctx context.Context) error {
	defer os.RemoveAll(p.sockDir)
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("fast shutdown did not finish, killed postgres: %w", ctx.Err())
	}
}

// kill is a crash: SIGKILL to the postmaster and to its backends, which would
// otherwise linger for a moment and hold the shared memory a restart needs.
// It reports whether they all went within the time allowed.
func (p *serverProc) kill() bool {
	children := childPIDs(p.cmd.Process.Pid)
	_ = p.cmd.Process.Kill()
	for _, pid := range children {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-p.done
	os.RemoveAll(p.sockDir)
	return waitGone(children, 10*time.Second)
}

// logTail is the end of what this run wrote to the server log.
func (p *serverProc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	if p.logFrom <= int64(len(b)) {
		b = b[p.logFrom:]
	}
	return lastLines(string(b), 20)
}
