package procs

import "os"

// machineCPU returns the machine's idle and total CPU time so far, in the
// kernel's ticks, and its CPU count, from /proc/stat.
func machineCPU() (idle, total uint64, cpus int, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	return parseStat(b)
}
