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

// Ensure that counters count every increment exactly once across a
// SIGKILLed coordinator: the increments in flight when it dies are sent
// again with their request ids, and the replica that takes over answers
// those it already holds with their first outcome. So no increment is
// answered SERVER_ERROR, and every key ends at exactly the increments
// acknowledged (a lost one would leave it lower, a doubled one higher).
// Appends likewise: the last keys are logs that grow a byte per append.
// All keys have the killed server as their coordinator, and 16
// connections keep writes in flight on it, half of them pipelining four at
// a time (served in windows).
func TestIncrExactlyOnceUnderKill(t *testing.T) {
	t.Parallel()
	incrExactlyOnce(t, false)
}

// Ensure the same when the killed coordinator is started again and
// attached while the gateway still retries, four times over: with a
// single server there is no replica to take over, so the retries of the
// writes in flight at each kill reach the restarted server, which has the
// versions their first attempts made on disk and must know their request
// ids too (the request-id file) rather than apply them again.
func TestIncrExactlyOnceUnderRestart(t *testing.T) {
	t.Parallel()
	incrExactlyOnce(t, true)
}

func incrExactlyOnce(t *testing.T, restart bool) {
	servers, victim := 3, 1
	if restart {
		servers, victim = 1, 0
	}
	c := localcluster.StartT(t, localcluster.Options{Servers: servers})
	const keys, logs, workers = 12, 4, 16 // keys[keys-logs:] are logs
	m := dial(t, c.Gateway())
	hs := whs(t, c.Manager(0))
	victimAddr := c.Server(victim).Addr
	var names []string
	for i := 0; len(names) < keys; i++ {
		name := fmt.Sprintf("ctr%d", i)
		if co, _ := hs.Lookup([]byte(name)).Coordinator(); co.Addr.String() == victimAddr {
			names = append(names, name)
		}
	}
	for k, name := range names {
		v := "0"
		if k >= keys-logs {
			v = ""
		}
		if r := m.set(name, v); r != "STORED\r\n" {
			t.Fatalf("set %s: %q", name, r)
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
			// Odd workers pipeline four increments of different keys
			// per write: the gateway serves those in a window.
			depth := 1 + 3*(w%2)
			var req strings.Builder
			ks := make([]int, depth)
			for i := w; ; i += depth {
				select {
				case <-stop:
					return
				default:
				}
				req.Reset()
				for j := range ks {
					ks[j] = (i + j) % keys
					if ks[j] >= keys-logs {
						fmt.Fprintf(&req, "append %s 0 0 1\r\nx\r\n", names[ks[j]])
					} else {
						fmt.Fprintf(&req, "incr %s 1\r\n", names[ks[j]])
					}
				}
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := nc.Write([]byte(req.String())); err != nil {
					errs <- err
					return
				}
				for _, k := range ks {
					l, err := r.ReadString('\n')
					if err != nil {
						errs <- err
						return
					}
					switch {
					case strings.HasPrefix(l, "SERVER_ERROR"):
						failed[k].Add(1)
					case k >= keys-logs:
						if l != "STORED\r\n" {
							errs <- fmt.Errorf("append %s: %q", names[k], l)
							return
						}
						acked[k].Add(1)
					default:
						if _, err := strconv.ParseUint(strings.TrimSuffix(l, "\r\n"), 10, 64); err != nil {
							errs <- fmt.Errorf("incr %s: %q", names[k], l)
							return
						}
						acked[k].Add(1)
					}
					ops.Add(1)
				}
			}
		}()
	}
	eventually(t, 30*time.Second, "increments before the kill", func() bool { return ops.Load() >= 2000 })
	kills := 1
	if restart {
		kills = 4 // each kill leaves a few writes applied and unanswered
	}
	for i := range kills {
		if i > 0 {
			start := ops.Load()
			eventually(t, 60*time.Second, "increments after a restart", func() bool { return ops.Load() >= start+2000 })
		}
		if err := c.KillServer(victim); err != nil {
			t.Fatal(err)
		}
		if restart {
			if err := c.RestartServer(victim); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Ctl("attach"); err != nil {
				t.Fatal(err)
			}
		}
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
	for k, key := range names {
		var v string
		eventually(t, 30*time.Second, "reading "+key, func() bool {
			var ok bool
			v, ok = m.get(key)
			return ok
		})
		got, err := int64(len(v)), error(nil)
		if k < keys-logs {
			got, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			t.Fatalf("%s = %q", key, v)
		}
		a, f := acked[k].Load(), failed[k].Load()
		totalAcked, totalFailed = totalAcked+a, totalFailed+f
		if got != a || f != 0 {
			t.Errorf("%s = %d after %d acknowledged writes and %d answered SERVER_ERROR; want %d and none", key, got, a, f, a)
		}
	}
	t.Logf("%d increments and appends acknowledged, %d answered SERVER_ERROR", totalAcked, totalFailed)
}
