package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
)

// Fleet is the client processes of one run, seen from the process that
// started them. Its methods address every process at once.
type Fleet struct {
	procs []*proc
}

// proc is one client process, seen from the parent.
type proc struct {
	id      int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	encMu   sync.Mutex
	enc     *json.Encoder
	replies chan message
	last    atomic.Pointer[Stats]
	cpu0    time.Duration
	done    chan struct{}
	err     error
}

// Start starts one client process per plan and hands each its plan. A
// client process is the calling program itself, run again with ChildArg as
// its first argument: its main must then call RunChild (see the package
// doc).
func Start(plans []Plan, stderr io.Writer) (*Fleet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start clients: %w", err)
	}
	cs := &Fleet{}
	for _, plan := range plans {
		p := &proc{id: plan.ID, replies: make(chan message, 4), done: make(chan struct{})}
		p.cmd = exec.Command(exe, ChildArg)
		p.cmd.Stderr = stderr
		out, err := p.cmd.StdoutPipe()
		if err == nil {
			p.stdin, err = p.cmd.StdinPipe()
		}
		if err == nil {
			err = p.cmd.Start()
		}
		if err != nil {
			cs.Close()
			return nil, fmt.Errorf("start client %d: %w", plan.ID, err)
		}
		p.cpu0, _ = cluster.CPUTime(p.cmd.Process.Pid)
		p.enc = json.NewEncoder(p.stdin)
		cs.procs = append(cs.procs, p)
		go p.read(out)
		if err := p.send(plan); err != nil {
			cs.Close()
			return nil, fmt.Errorf("start client %d: send plan: %w", plan.ID, err)
		}
	}
	return cs, nil
}

func (p *proc) send(v any) error {
	p.encMu.Lock()
	defer p.encMu.Unlock()
	return p.enc.Encode(v)
}

// read dispatches the process's lines: stats are kept, the rest answer
// commands.
func (p *proc) read(out io.Reader) {
	defer close(p.done)
	defer close(p.replies)
	br := bufio.NewReaderSize(out, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var m message
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				p.err = fmt.Errorf("client %d: undecodable line: %w", p.id, jerr)
			} else if m.Type == "stats" {
				p.last.Store(m.Stats)
			} else {
				p.replies <- m
			}
		}
		if err != nil {
			if p.err == nil && !errors.Is(err, io.EOF) {
				p.err = err
			}
			p.err = errors.Join(p.err, p.cmd.Wait())
			return
		}
	}
}

// reply waits for the next answer of type typ from p.
func (p *proc) reply(ctx context.Context, typ string, timeout time.Duration) (message, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m, ok := <-p.replies:
		switch {
		case !ok:
			return m, fmt.Errorf("client %d exited: %v", p.id, p.err)
		case m.Type == "error":
			return m, fmt.Errorf("client %d: %s", p.id, m.Error)
		case m.Type != typ:
			return m, fmt.Errorf("client %d answered %q, want %q", p.id, m.Type, typ)
		}
		return m, nil
	case <-t.C:
		return message{}, fmt.Errorf("client %d: no %q answer within %s", p.id, typ, timeout)
	case <-ctx.Done():
		return message{}, ctx.Err()
	}
}

// all sends cmd to every process and collects each one's answer of type typ.
func (cs *Fleet) all(ctx context.Context, cmd command, typ string, timeout time.Duration) ([]message, error) {
	for _, p := range cs.procs {
		if err := p.send(cmd); err != nil {
			return nil, fmt.Errorf("client %d: %w", p.id, err)
		}
	}
	if typ == "" {
		return nil, nil
	}
	out := make([]message, len(cs.procs))
	var errs []error
	for i, p := range cs.procs {
		m, err := p.reply(ctx, typ, timeout)
		out[i], errs = m, append(errs, err)
	}
	return out, errors.Join(errs...)
}

// tell sends cmd to every process without waiting for an answer.
func (cs *Fleet) tell(cmd command) error {
	_, err := cs.all(context.Background(), cmd, "", 0)
	return err
}

// SetResumeRate makes random streams resume on random nodes, rate a second
// over all of each process's streams (a Poisson process; 0 stops it).
func (cs *Fleet) SetResumeRate(rate float64) error {
	return cs.tell(command{Op: opResumeRate, Rate: rate})
}

// SetNodeDown takes node i out of rotation (or puts it back): no stream
// connects to it while it is down, as behind a load balancer.
func (cs *Fleet) SetNodeDown(i int, down bool) error {
	op := opNodeUp
	if down {
		op = opNodeDown
	}
	return cs.tell(command{Op: op, Node: i})
}

// MarkHeartbeats restarts every stream's heartbeat count and longest gap.
func (cs *Fleet) MarkHeartbeats() error { return cs.tell(command{Op: opMark}) }

// WaitOpened waits for every process to have opened its streams: how many
// opened and failed to within a minute, and the slowest process's time.
func (cs *Fleet) WaitOpened(ctx context.Context, timeout time.Duration) (opened, failed int, seconds float64, err error) {
	for _, p := range cs.procs {
		m, err := p.reply(ctx, "opened", timeout)
		if err != nil {
			return opened, failed, seconds, err
		}
		opened, failed, seconds = opened+m.Opened, failed+m.Failed, math.Max(seconds, m.OpenSec)
	}
	return opened, failed, seconds, nil
}

// WaitSeq waits until every stream has received seq; it returns how many
// have not.
func (cs *Fleet) WaitSeq(ctx context.Context, seq int64, timeout time.Duration) (int, error) {
	ms, err := cs.all(ctx, command{Op: opWait, Seq: seq, TimeoutMs: timeout.Milliseconds()}, "waited", timeout+30*time.Second)
	behind := 0
	for _, m := range ms {
		behind += m.Behind
	}
	return behind, err
}

// Report collects every stream's report, by stream key; deliveries
// includes what each one received and when. Stats holds the reports'
// sums from then on, as fresh as they are.
func (cs *Fleet) Report(ctx context.Context, deliveries bool) (map[int]StreamReport, error) {
	ms, err := cs.all(ctx, command{Op: opReport, Deliveries: deliveries}, "report", 2*time.Minute)
	if err != nil {
		return nil, err
	}
	out := map[int]StreamReport{}
	for i, m := range ms {
		if m.Stats != nil {
			cs.procs[i].last.Store(m.Stats)
		}
		for _, s := range m.Streams {
			s.Seqs, s.AtMicros = deltaDecode(s.Seqs), deltaDecode(s.AtMicros)
			out[s.Key] = s
		}
	}
	return out, nil
}

// Stats sums the processes' latest stats (each sends them every second);
// a process yet to send any makes BeatsMin 0.
func (cs *Fleet) Stats() Stats {
	var s Stats
	for i, p := range cs.procs {
		l := p.last.Load()
		if l == nil {
			s.add(Stats{}, i == 0)
			continue
		}
		one := *l
		one.CloseReasons, one.GoroutinesApp = nil, 0 // kept per process only
		s.add(one, i == 0)
	}
	return s
}

// MarkCPU starts counting the processes' CPU from now.
func (cs *Fleet) MarkCPU() {
	for _, p := range cs.procs {
		p.cpu0, _ = cluster.CPUTime(p.cmd.Process.Pid)
	}
}

// ProcessCPU is one client process's CPU time over a window.
type ProcessCPU struct {
	ID, PID int
	CPU     time.Duration
}

// CPU is each live process's CPU since MarkCPU (or since it started).
func (cs *Fleet) CPU() []ProcessCPU {
	var out []ProcessCPU
	for _, p := range cs.procs {
		c, err := cluster.CPUTime(p.cmd.Process.Pid)
		if err != nil {
			continue
		}
		out = append(out, ProcessCPU{ID: p.id, PID: p.cmd.Process.Pid, CPU: c - p.cpu0})
	}
	return out
}

// Close ends the client processes: stdin closes, they stop; any left after
// 10 s are killed.
func (cs *Fleet) Close() {
	for _, p := range cs.procs {
		if p.stdin != nil {
			p.stdin.Close()
		}
	}
	deadline := time.After(10 * time.Second)
	for _, p := range cs.procs {
		select {
		case <-p.done:
		case <-deadline:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}
