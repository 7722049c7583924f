//go:build !linux

package procs

// machineCPU is not known here: the Adapter changes nothing.
func machineCPU() (idle, total uint64, cpus int, ok bool) { return 0, 0, 0, false }
