package integration

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that counters stay exact across a SIGKILLed server: for every
// key, the final value is at least the increments acknowledged (none is
// lost) and at most those plus the increments answered SERVER_ERROR
// (which may or may not have applied) — a retried increment that applied
// twice would exceed it.
func TestIncrAcrossKill(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{Servers: 3})
	const keys, workers = 12, 4
	m := dial(t, c.Gateway())
	for k := range keys {
		if r := m.set(fmt.Sprintf("ctr%d", k), "0"); r != "STORED\r\n" {
			t.Fatalf("set ctr%d: %q", k, r)
		}
	}
	var acked, failed [keys]atomic.Int64
	var ops atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		nc, err := net.DialTimeout("tcp", c.Gateway(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(nc)
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := i % keys
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := fmt.Fprintf(nc, "incr ctr%d 1\r\n", k); err != nil {
					errs <- err
					return
				}
				l, err := r.ReadString('\n')
				if err != nil {
					errs <- err
					return
				}
				switch {
				case strings.HasPrefix(l, "SERVER_ERROR"):
					failed[k].Add(1)
				default:
					if _, err := strconv.ParseUint(strings.TrimSuffix(l, "\r\n"), 10, 64); err != nil {
						errs <- fmt.Errorf("incr ctr%d: %q", k, l)
						return
					}
					acked[k].Add(1)
				}
				ops.Add(1)
			}
		}()
	}
	eventually(t, 30*time.Second, "increments before the kill", func() bool { return ops.Load() >= 2000 })
	if err := c.KillServer(1); err != nil {
		t.Fatal(err)
	}
	start := ops.Load()
	eventually(t, 60*time.Second, "increments after the kill", func() bool { return ops.Load() >= start+4000 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var totalAcked, totalFailed int64
	for k := range keys {
		key := fmt.Sprintf("ctr%d", k)
		var v string
		eventually(t, 30*time.Second, "reading "+key, func() bool {
			var ok bool
			v, ok = m.get(key)
			return ok
		})
		got, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s = %q", key, v)
		}
		a, f := acked[k].Load(), failed[k].Load()
		totalAcked, totalFailed = totalAcked+a, totalFailed+f
		if got < a || got > a+f {
			t.Errorf("%s = %d after %d acknowledged and %d failed increments", key, got, a, f)
		}
	}
	t.Logf("%d increments acknowledged, %d answered SERVER_ERROR", totalAcked, totalFailed)
}
