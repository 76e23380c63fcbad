package main

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

// clientSet is the client processes of one phase.
type clientSet struct {
	procs []*clientProc
}

// clientProc is one client process, seen from the bench.
type clientProc struct {
	id      int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	encMu   sync.Mutex
	enc     *json.Encoder
	replies chan clientMsg
	last    atomic.Pointer[clientStats]
	cpu0    time.Duration
	done    chan struct{}
	err     error
}

// startClients starts one client process per plan (the bench itself, run
// with clientProcArg) and hands each its plan.
func startClients(plans []clientPlan, stderr io.Writer) (*clientSet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start clients: %w", err)
	}
	cs := &clientSet{}
	for _, plan := range plans {
		p := &clientProc{id: plan.ID, replies: make(chan clientMsg, 4), done: make(chan struct{})}
		p.cmd = exec.Command(exe, clientProcArg)
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

func (p *clientProc) send(v any) error {
	p.encMu.Lock()
	defer p.encMu.Unlock()
	return p.enc.Encode(v)
}

// read dispatches the process's lines: stats are kept, the rest answer
// commands.
func (p *clientProc) read(out io.Reader) {
	defer close(p.done)
	defer close(p.replies)
	br := bufio.NewReaderSize(out, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var m clientMsg
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
func (p *clientProc) reply(ctx context.Context, typ string, timeout time.Duration) (clientMsg, error) {
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
		return clientMsg{}, fmt.Errorf("client %d: no %q answer within %s", p.id, typ, timeout)
	case <-ctx.Done():
		return clientMsg{}, ctx.Err()
	}
}

// all sends cmd to every process and collects each one's answer of type typ.
func (cs *clientSet) all(ctx context.Context, cmd clientCmd, typ string, timeout time.Duration) ([]clientMsg, error) {
	for _, p := range cs.procs {
		if err := p.send(cmd); err != nil {
			return nil, fmt.Errorf("client %d: %w", p.id, err)
		}
	}
	if typ == "" {
		return nil, nil
	}
	out := make([]clientMsg, len(cs.procs))
	var errs []error
	for i, p := range cs.procs {
		m, err := p.reply(ctx, typ, timeout)
		out[i], errs = m, append(errs, err)
	}
	return out, errors.Join(errs...)
}

// tell sends cmd to every process without waiting for an answer.
func (cs *clientSet) tell(cmd clientCmd) error {
	_, err := cs.all(context.Background(), cmd, "", 0)
	return err
}

// waitOpened waits for every process to have opened its streams.
func (cs *clientSet) waitOpened(ctx context.Context, timeout time.Duration) (opened, failed int, seconds float64, err error) {
	for _, p := range cs.procs {
		m, err := p.reply(ctx, "opened", timeout)
		if err != nil {
			return opened, failed, seconds, err
		}
		opened, failed, seconds = opened+m.Opened, failed+m.Failed, math.Max(seconds, m.OpenSec)
	}
	return opened, failed, seconds, nil
}

// waitSeq waits until every stream has received seq; it returns how many
// have not.
func (cs *clientSet) waitSeq(ctx context.Context, seq int64, timeout time.Duration) (int, error) {
	ms, err := cs.all(ctx, clientCmd{Op: opWait, Seq: seq, TimeoutMs: timeout.Milliseconds()}, "waited", timeout+30*time.Second)
	behind := 0
	for _, m := range ms {
		behind += m.Behind
	}
	return behind, err
}

// report collects every stream's report, by stream key.
func (cs *clientSet) report(ctx context.Context, deliveries bool) (map[int]streamReport, error) {
	ms, err := cs.all(ctx, clientCmd{Op: opReport, Deliveries: deliveries}, "report", 2*time.Minute)
	if err != nil {
		return nil, err
	}
	out := map[int]streamReport{}
	for _, m := range ms {
		for _, s := range m.Streams {
			s.Seqs, s.AtMicros = deltaDecode(s.Seqs), deltaDecode(s.AtMicros)
			out[s.Key] = s
		}
	}
	return out, nil
}

// stats sums the processes' latest stats (sent every second).
func (cs *clientSet) stats() clientStats {
	var s clientStats
	s.BeatsMin = math.MaxInt
	for _, p := range cs.procs {
		l := p.last.Load()
		if l == nil {
			s.BeatsMin = 0
			continue
		}
		s.Open += l.Open
		s.Received += l.Received
		s.Connects += l.Connects
		s.ConnectErrors += l.ConnectErrors
		s.Resumes += l.Resumes
		s.Drops += l.Drops
		s.ProtocolErrors += l.ProtocolErrors
		s.BeatsMin = min(s.BeatsMin, l.BeatsMin)
		s.NoBeats += l.NoBeats
		s.MaxBeatGapMs = max(s.MaxBeatGapMs, l.MaxBeatGapMs)
		s.RSS += l.RSS
	}
	if len(cs.procs) == 0 {
		s.BeatsMin = 0
	}
	return s
}

// markCPU starts counting the processes' CPU from now.
func (cs *clientSet) markCPU() {
	for _, p := range cs.procs {
		p.cpu0, _ = cluster.CPUTime(p.cmd.Process.Pid)
	}
}

// cpu is each process's CPU since markCPU (or since it started).
func (cs *clientSet) cpu() []ProcCPU {
	var out []ProcCPU
	for _, p := range cs.procs {
		c, err := cluster.CPUTime(p.cmd.Process.Pid)
		if err != nil {
			continue
		}
		out = append(out, ProcCPU{Name: fmt.Sprintf("client %d", p.id), PID: p.cmd.Process.Pid, CPUSeconds: (c - p.cpu0).Seconds()})
	}
	return out
}

// Close ends the client processes: stdin closes, they stop; any left after
// 10 s are killed.
func (cs *clientSet) Close() {
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
