package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "KUMO_STORE_CRASH_CHILD"

// crashChild writes records with SyncAlways and reports each
// acknowledged key on stdout until it is killed.
func crashChild() {
	path := os.Getenv(crashChildEnv)
	if os.Getenv("KUMO_STORE_CRASH_MMAP") != "" {
		heapSlots = false // the production layout: slots live in the page cache
	}
	db, err := Open(path, &Options{Sync: SyncAlways, SyncInterval: 5 * time.Millisecond, Buckets: 1 << 14})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	start, _ := strconv.Atoi(os.Getenv("KUMO_STORE_CRASH_START"))
	if os.Getenv("KUMO_STORE_CRASH_COMPACT") != "" {
		// Compact continuously, so kills also land inside compactions
		// and file swaps.
		go func() {
			for {
				if err := db.Compact(CompactOptions{}); err != nil {
					fmt.Println("error", err)
					os.Exit(2)
				}
			}
		}()
	}
	w := bufio.NewWriter(os.Stdout)
	for i := start; ; i++ {
		k := key(i)
		v := []byte(strings.Repeat(string(k), 1+i%7))
		if err := db.Put(&Record{Key: k, Value: v, Clock: uint64(i)}); err != nil {
			fmt.Fprintln(w, "error", err)
			w.Flush()
			os.Exit(2)
		}
		fmt.Fprintln(w, "p", i)
		w.Flush()
		if i%5 == 0 {
			if _, err := db.Delete(key(i-3), nil); err != nil {
				fmt.Fprintln(w, "error", err)
				w.Flush()
				os.Exit(2)
			}
			fmt.Fprintln(w, "d", i-3)
			w.Flush()
		}
	}
}

// Ensure that a writer killed with SIGKILL at random points loses no
// acknowledged write, and that every reopen succeeds.
func TestCrashMatrix(t *testing.T) {
	path := t.TempDir() + "/crash.kch"
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	acked := map[int]bool{}
	next := 0
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, "KUMO_STORE_CRASH_START="+strconv.Itoa(next))
		if round%2 == 1 {
			cmd.Env = append(cmd.Env, "KUMO_STORE_CRASH_COMPACT=1")
		}
		if round%4 >= 2 {
			cmd.Env = append(cmd.Env, "KUMO_STORE_CRASH_MMAP=1")
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Each line reports one acknowledged operation; a line cut by
		// the kill (no newline) reports nothing.
		r := bufio.NewReader(out)
		killAt := 50 + rand.IntN(400)
		maybeGone := -1 // a delete that may have run but was not reported
		for n := 1; ; n++ {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			op, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			i, err := strconv.Atoi(arg)
			if err != nil || (op != "p" && op != "d") {
				t.Fatalf("child: %s", line)
			}
			maybeGone = -1
			if op == "p" {
				acked[i] = true
				next = i + 1
				if i%5 == 0 {
					maybeGone = i - 3
				}
			} else {
				delete(acked, i)
			}
			if n == killAt {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		db, err := Open(path, &Options{Sync: SyncNone})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		for i := range acked {
			rec, _, err := db.Get(key(i), nil)
			if i == maybeGone && err == ErrNotFound {
				delete(acked, i)
				continue
			}
			if err != nil || rec.Clock != uint64(i) {
				t.Fatalf("round %d: acked key %d: %v %+v", round, i, err, rec)
			}
		}
		if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
			t.Fatalf("round %d: compaction leftover not removed: %v", round, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		// The child may have written next (and a delete) without
		// acknowledging; continue after it.
		next += 10
	}
}
