package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Process is a child process a harness runs for a test (nginx, PgBouncer,
// Hydra): started, watched for an early exit while the harness waits for it
// to answer, and stopped with the signal it shuts down on.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// StartProcess starts cmd and reaps it when it exits.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Exited is closed once the process has exited; ExitErr then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is how the process ended; call it after Exited is closed.
func (p *Process) ExitErr() error { return p.err }

// Stop sends sig and waits up to grace for the process to exit, then kills
// it; it returns once the process is gone, so its ports and files are free.
func (p *Process) Stop(sig os.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
