package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that a CAS unique names one value wherever a client reads it:
// while writers race on a few keys through an embedded gateway and a
// kumo-gateway (two stampers of direct sets), no two gets, through either
// gateway, return one CAS unique with two different values. An embedded
// gateway that answered gets from its own server where that server is not
// the key's first owner failed this (session 16's hunt found hundreds of
// such pairs): a cas with such a unique replaces a value its client never
// saw.
func TestCASNamesOneValue(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{EmbeddedGateway: true})
	g2 := startGateway(t, c, "gateway-2")
	addrs := []string{c.Gateway(), g2.Addr}
	keys := []string{"cas-a", "cas-b", "cas-c", "cas-d"}

	var mu sync.Mutex
	seen := make(map[string]string) // "key cas" -> value
	var collisions, reads, writes atomic.Int64
	var first atomic.Value // the first collision, for the message
	stop := time.Now().Add(3 * time.Second)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", addrs[w%2], 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			for i := 0; time.Now().Before(stop); i++ {
				k := keys[(i+w)%len(keys)]
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if w < 8 {
					v := fmt.Sprintf("w%d-%d", w, i)
					fmt.Fprintf(conn, "set %s 0 0 %d\r\n%s\r\n", k, len(v), v)
					if l, err := r.ReadString('\n'); err != nil || l != "STORED\r\n" {
						errs <- fmt.Errorf("set %s through %s: %q, %v", k, addrs[w%2], l, err)
						return
					}
					writes.Add(1)
					continue
				}
				fmt.Fprintf(conn, "gets %s\r\n", k)
				l, err := r.ReadString('\n')
				if err != nil {
					errs <- err
					return
				}
				if l == "END\r\n" {
					continue
				}
				var key string
				var flags, n int
				var cas uint64
				if _, err := fmt.Sscanf(l, "VALUE %s %d %d %d", &key, &flags, &n, &cas); err != nil || key != k {
					errs <- fmt.Errorf("gets %s: %q", k, l)
					return
				}
				data := make([]byte, n+2)
				if _, err := io.ReadFull(r, data); err != nil {
					errs <- err
					return
				}
				if end, err := r.ReadString('\n'); err != nil || end != "END\r\n" {
					errs <- fmt.Errorf("gets %s: %q, %v", k, end, err)
					return
				}
				reads.Add(1)
				val, id := string(data[:n]), fmt.Sprint(k, " ", cas)
				mu.Lock()
				prev, ok := seen[id]
				if !ok {
					seen[id] = val
				}
				mu.Unlock()
				if ok && prev != val {
					if collisions.Add(1) == 1 {
						first.Store(fmt.Sprintf("%s cas %d: %q and %q", k, cas, prev, val))
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d sets, %d gets", writes.Load(), reads.Load())
	if n := collisions.Load(); n != 0 {
		t.Fatalf("%d gets returned a CAS unique another get returned with another value; first: %s", n, first.Load())
	}
	if reads.Load() < 100 || writes.Load() < 100 {
		t.Fatalf("too little traffic to tell: %d sets, %d gets", writes.Load(), reads.Load())
	}
}
