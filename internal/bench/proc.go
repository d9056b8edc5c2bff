package bench

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in
// /proc/PID/stat; it is 100 on every mainstream architecture.
const clockTicks = 100

// sample reads a process's resident memory and CPU time from /proc; on
// other systems, or if the process is gone, it returns zeros.
func sample(pid int) Sample {
	var s Sample
	p := "/proc/" + strconv.Itoa(pid)
	if b, err := os.ReadFile(p + "/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					s.RSSKiB, _ = strconv.ParseInt(f[0], 10, 64)
				}
			}
		}
	}
	if b, err := os.ReadFile(p + "/stat"); err == nil {
		// The command name may hold spaces; fields count from after it.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			// f[0] is field 3 (state); utime and stime are fields 14 and 15.
			if len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				s.CPUSecs = float64(u+st) / clockTicks
			}
		}
	}
	return s
}

// sampleCPU is the CPU time of each of pids, in order, named by its
// command (/proc/PID/comm); a process that is gone counts 0.
func sampleCPU(pids []int) []ProcCPU {
	out := make([]ProcCPU, len(pids))
	for i, pid := range pids {
		out[i] = ProcCPU{PID: pid, Secs: sample(pid).CPUSecs}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
			out[i].Name = strings.TrimSpace(string(b))
		}
	}
	return out
}

// cpuSince is each process's CPU time between two samples of the same
// pids.
func cpuSince(before, after []ProcCPU) []ProcCPU {
	out := make([]ProcCPU, len(after))
	for i, a := range after {
		out[i] = a
		if i < len(before) && before[i].PID == a.PID {
			out[i].Secs = max(0, a.Secs-before[i].Secs)
		}
	}
	return out
}
