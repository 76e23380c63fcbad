package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of CPU times in /proc/<pid>/stat.
const clockTicks = 100

// RSS is the resident set size of process pid in bytes (VmRSS in
// /proc/<pid>/status): what the process costs the machine's memory, Go heap,
// stacks and runtime overhead included, kernel socket buffers not.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read rss of %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("read rss of %d: no VmRSS line", pid)
}

// CPUTime is the user plus system CPU time process pid has used so far
// (/proc/<pid>/stat), in steps of 10 ms.
func CPUTime(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	return st.User + st.System, nil
}

// TreeCPU is the CPU time a process and its children have used so far: its
// own, its exited children's that it reaped, and its live children's. For
// a PostgreSQL postmaster that is the whole server: every backend, live or
// gone, and the background processes.
func TreeCPU(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	total := st.User + st.System + st.ChildUser + st.ChildSystem
	kids, err := children(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range kids {
		if cs, err := readStat(c); err == nil { // gone since listed: counted once reaped
			total += cs.User + cs.System
		}
	}
	return total, nil
}

// procStat is what /proc/<pid>/stat says of a process's parent and CPU time
// (in steps of 10 ms).
type procStat struct {
	PPID         int
	User, System time.Duration
	// ChildUser and ChildSystem are the CPU of its children that exited and
	// that it waited for: a postmaster's backends that have gone.
	ChildUser, ChildSystem time.Duration
}

// readStat reads process pid's /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	malformed := fmt.Errorf("malformed /proc/%d/stat", pid)
	// The command (which may hold spaces) ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, malformed
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, malformed
	}
	var n [5]int64 // ppid, utime, stime, cutime, cstime
	for k, at := range []int{1, 11, 12, 13, 14} {
		if n[k], err = strconv.ParseInt(f[at], 10, 64); err != nil {
			return procStat{}, malformed
		}
	}
	ticks := func(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return procStat{PPID: int(n[0]), User: ticks(n[1]), System: ticks(n[2]), ChildUser: ticks(n[3]), ChildSystem: ticks(n[4])}, nil
}

// children lists the processes whose parent is pid.
func children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, ent := range entries {
		child, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(child); err == nil && st.PPID == pid {
			out = append(out, child)
		}
	}
	return out, nil
}

// LoadAverage is the machine's 1-minute load average (-1 if unknown): other
// work sharing the cores moves every timing figure.
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	x, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return x
}
