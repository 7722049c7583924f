package procs

import (
	"bytes"
	"strconv"
)

// parseStat reads the text of /proc/stat: from the first line ("cpu" and
// the ticks spent in user, nice, system, idle, iowait, irq, softirq and
// steal, then guest times, which user and nice already count), the idle
// (idle and iowait) and total ticks; and the number of per-CPU lines
// ("cpu0", "cpu1", ...).
func parseStat(b []byte) (idle, total uint64, cpus int, ok bool) {
	line, rest, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, 0, false
	}
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil || n > 1<<56 { // no tick count gets near; the sums cannot wrap
			return 0, 0, 0, false
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(line) > 3 && string(line[:3]) == "cpu" && line[3] >= '0' && line[3] <= '9' {
			cpus++
		}
	}
	return idle, total, cpus, cpus > 0
}
