package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's CPU times; it is 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procStatusKiB reads a "<Key>: <n> kB" line of /proc/<pid>/status, such
// as VmRSS (resident now) or VmHWM (the most it has ever been resident).
func procStatusKiB(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %d: %s: %w", pid, key, err)
		}
		return kib, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("process %d: read status: %w", pid, err)
	}
	return 0, fmt.Errorf("process %d: no %s in status", pid, key)
}

// procCPU is the CPU time (user + system) a process has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// fields from 3 (state) on follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("process %d: short stat", pid)
	}
	var ticks int64
	for _, s := range []string{f[utime], f[stime]} {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %d: cpu time: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// watched is a process the tool reports on (pid 0: not watched).
type watched struct {
	name string
	pid  int
}

// cpuMeter measures the CPU the watched processes use during a phase.
type cpuMeter struct {
	procs []watched
	start []time.Duration
}

func startCPU(procs []watched) *cpuMeter {
	m := &cpuMeter{procs: procs, start: make([]time.Duration, len(procs))}
	for i, p := range procs {
		m.start[i], _ = procCPU(p.pid) // unreadable: reported as unknown by stop
	}
	return m
}

// stop returns the CPU seconds each watched process used since startCPU.
func (m *cpuMeter) stop() map[string]float64 {
	out := map[string]float64{}
	for i, p := range m.procs {
		if now, err := procCPU(p.pid); err == nil {
			out[p.name] = (now - m.start[i]).Seconds()
		}
	}
	return out
}
