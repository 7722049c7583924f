package integration

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// load runs writers and readers against a gateway until stop is closed. A
// write counts as acknowledged only when STORED came back; every
// acknowledged value must read back later.
type load struct {
	mu       sync.Mutex
	acked    map[string]string // key -> last acknowledged value
	writeErr atomic.Int64
	readErr  atomic.Int64
	wrong    atomic.Int64
	writes   atomic.Int64
	reads    atomic.Int64
	maxWrite atomic.Int64 // longest acknowledged write, ns
	maxRead  atomic.Int64 // longest successful read, ns
	errs     []string
}

// note records d in m if it is the longest so far.
func noteMax(m *atomic.Int64, d time.Duration) {
	for {
		old := m.Load()
		if int64(d) <= old || m.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (l *load) note(s string) {
	l.mu.Lock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, s)
	}
	l.mu.Unlock()
}

func (l *load) run(t *testing.T, addr string, writers, readers int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := dial(t, addr)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("load-%d-%d", w, i%200)
				v := fmt.Sprintf("v%d-%d", w, i)
				l.mu.Lock()
				l.mu.Unlock()
				t0 := time.Now()
				if r := c.set(k, v); r != "STORED\r\n" {
					l.writeErr.Add(1)
					l.note("set " + k + ": " + r)
					continue
				}
				noteMax(&l.maxWrite, time.Since(t0))
				l.writes.Add(1)
				l.mu.Lock()
				l.acked[k] = v
				l.mu.Unlock()
			}
		}(w)
	}
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			c := dial(t, addr)
			rnd := rand.New(rand.NewSource(int64(r)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("load-%d-%d", rnd.Intn(writers), rnd.Intn(200))
				l.mu.Lock()
				want, ok := l.acked[k]
				l.mu.Unlock()
				if !ok {
					continue
				}
				t0 := time.Now()
				c.send("get " + k + "\r\n")
				line := c.line()
				if strings.HasPrefix(line, "SERVER_ERROR") {
					l.readErr.Add(1)
					l.note("get " + k + ": " + line)
					continue
				}
				noteMax(&l.maxRead, time.Since(t0))
				l.reads.Add(1)
				if line == "END\r\n" {
					l.wrong.Add(1)
					l.note("get " + k + ": miss, want " + want)
					continue
				}
				val := c.line()
				c.line() // END
				// A concurrent writer may have acknowledged a newer value
				// of the same writer's key after we looked: compare the
				// writer's sequence, never older than the acked one.
				if older(strings.TrimSuffix(val, "\r\n"), want) {
					l.wrong.Add(1)
					l.note("get " + k + ": " + val + " older than " + want)
				}
			}
		}(r)
	}
	return &wg
}

// older reports whether value a ("v<w>-<i>") was written before b.
func older(a, b string) bool {
	seq := func(s string) int {
		i := strings.LastIndexByte(s, '-')
		n, _ := strconv.Atoi(s[i+1:])
		return n
	}
	return seq(a) < seq(b)
}

// Ensure that killing one of three servers with SIGKILL under load loses no
// acknowledged write, that reads keep succeeding through failover, that the
// manager marks the server fault and that detach removes it.
func TestKillServerUnderLoad(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	l := &load{acked: map[string]string{}}
	stop := make(chan struct{})
	wg := l.run(t, c.Gateway(), 4, 4, stop)
	eventually(t, 20*time.Second, "some load", func() bool { return l.writes.Load() > 300 })
	victim := c.Server(1)
	if err := c.KillServer(1); err != nil {
		t.Fatal(err)
	}
	killedAt := l.writes.Load()
	eventually(t, 30*time.Second, "writes after the kill", func() bool { return l.writes.Load() > killedAt+500 })
	close(stop)
	wg.Wait()
	if n := l.writeErr.Load() + l.readErr.Load() + l.wrong.Load(); n != 0 {
		t.Fatalf("%d write errors, %d read errors, %d wrong reads: %v",
			l.writeErr.Load(), l.readErr.Load(), l.wrong.Load(), l.errs)
	}
	// Every acknowledged write reads back, through a fresh connection.
	m := dial(t, c.Gateway())
	for k, want := range l.acked {
		if got, ok := m.get(k); !ok || older(got, want) {
			t.Fatalf("acknowledged %s=%s reads back as %q (hit %v)", k, want, got, ok)
		}
	}
	out, err := c.Ctl("status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, victim.Addr+"  (fault)") {
		t.Fatalf("status does not show %s as fault:\n%s", victim.Addr, out)
	}
	if _, err := c.Ctl("detach"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "detach", func() bool {
		out, err := c.Ctl("status")
		return err == nil && !strings.Contains(out, victim.Addr)
	})
	t.Logf("%d writes, %d reads; longest write %v, longest read %v (the client-visible stall of the kill)",
		l.writes.Load(), l.reads.Load(), time.Duration(l.maxWrite.Load()), time.Duration(l.maxRead.Load()))
}

// Ensure that CAS is safe under a race: 8 connections each do 100
// gets+cas increments of one counter; the final value equals the number of
// cas replies that said STORED.
func TestCASRace(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	if r := dial(t, c.Gateway()).set("ctr", "0"); r != "STORED\r\n" {
		t.Fatal(r)
	}
	var stored atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := dial(t, c.Gateway())
			for j := 0; j < 100; j++ {
				v, cas, ok := m.gets("ctr")
				if !ok {
					t.Errorf("gets ctr: miss")
					return
				}
				n, _ := strconv.Atoi(v)
				nv := strconv.Itoa(n + 1)
				switch r := m.cmd(fmt.Sprintf("cas ctr 0 0 %d %d\r\n%s\r\n", len(nv), cas, nv)); r {
				case "STORED\r\n":
					stored.Add(1)
				case "EXISTS\r\n":
				default:
					t.Errorf("cas: %q", r)
					return
				}
			}
		}()
	}
	wg.Wait()
	v, ok := dial(t, c.Gateway()).get("ctr")
	if !ok || v != strconv.FormatInt(stored.Load(), 10) {
		t.Fatalf("final value %q, %d cas stored", v, stored.Load())
	}
	if stored.Load() == 0 {
		t.Fatal("no cas succeeded")
	}
}

// rss returns the resident memory of a process in KiB.
func rss(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading status of %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// checkProcs asserts that every daemon of c is alive with bounded memory.
func checkProcs(t *testing.T, c *localcluster.Cluster) {
	t.Helper()
	for _, p := range c.Procs() {
		if !p.Alive() {
			t.Fatalf("%s died", p)
		}
		if kb := rss(t, p.Pid()); kb > 256<<10 {
			t.Fatalf("%s uses %d KiB", p, kb)
		}
	}
}

// Ensure that garbage and huge declared lengths at every port leave every
// daemon up, with bounded memory, and the cluster serving.
func TestBadInputEverywhere(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	targets := []string{c.Manager(0), c.Gateway()}
	for i := 0; i < c.NumServers(); i++ {
		targets = append(targets, c.Server(i).Addr)
	}
	payloads := [][]byte{
		[]byte("\xc1\xc1\xc1garbage\r\n"),
		{0xdb, 0xff, 0xff, 0xff, 0xff},                                  // raw32 of 4 GiB
		{0xdd, 0xff, 0xff, 0xff, 0xff, 0x00},                            // array32 of 4G elements
		{0x94, 0x00, 0x01, 0xcd, 0x00, 0x22, 0x91, 0xc0},                // request with a nil key
		{0x94, 0x00, 0x01, 0x00, 0x90},                                  // KeepAlive without params
		{0x80, 0x01, 0x00, 0x01, 0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, // binary memcached, huge body
		[]byte("set k 0 0 4294967295\r\n"),
		[]byte(strings.Repeat("x", 2<<20)), // 2 MiB without newline
	}
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		b := make([]byte, 1+rnd.Intn(4096))
		rnd.Read(b)
		payloads = append(payloads, b)
	}
	// Mutated memcached commands for the gateway: byte flips, cuts and
	// splices of valid requests.
	valid := [][]byte{
		[]byte("set k 0 0 5\r\nhello\r\n"), []byte("get k k2\r\n"), []byte("cas k 1 2 3 4\r\nabc\r\n"),
		[]byte("incr k 5\r\n"), []byte("mg k v f t\r\n"), []byte("ms k 2 T0\r\nhi\r\n"),
		{0x80, 0x01, 0x00, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'k', 'v'},
	}
	var mutated [][]byte
	for i := 0; i < 300; i++ {
		b := append([]byte(nil), valid[rnd.Intn(len(valid))]...)
		switch rnd.Intn(3) {
		case 0:
			b[rnd.Intn(len(b))] = byte(rnd.Intn(256))
		case 1:
			b = b[:rnd.Intn(len(b))]
		default:
			b = append(b, valid[rnd.Intn(len(valid))][rnd.Intn(8):]...)
		}
		mutated = append(mutated, b)
	}
	var mwg sync.WaitGroup
	for w := 0; w < 30; w++ {
		mwg.Add(1)
		go func(w int) {
			defer mwg.Done()
			for i := w; i < len(mutated); i += 30 {
				conn, err := net.DialTimeout("tcp", c.Gateway(), 2*time.Second)
				if err != nil {
					t.Errorf("dial gateway: %v", err)
					return
				}
				conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
				conn.Write(mutated[i])
				buf := make([]byte, 512)
				conn.Read(buf)
				conn.Close()
			}
		}(w)
	}
	mwg.Wait()
	var pwg sync.WaitGroup
	for _, addr := range targets {
		for _, p := range payloads {
			pwg.Add(1)
			go func(addr string, p []byte) {
				defer pwg.Done()
				conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Errorf("dial %s: %v", addr, err)
					return
				}
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				conn.Write(p)
				buf := make([]byte, 512)
				conn.Read(buf) // whatever comes back, or a close
				conn.Close()
			}(addr, p)
		}
	}
	pwg.Wait()
	for _, p := range c.Procs() {
		if !p.Alive() {
			t.Fatalf("%s died after bad input", p)
		}
		if kb := rss(t, p.Pid()); kb > 256<<10 {
			t.Fatalf("%s uses %d KiB after bad input", p, kb)
		}
	}
	m := dial(t, c.Gateway())
	if r := m.set("still", "up"); r != "STORED\r\n" {
		t.Fatalf("set after bad input: %q", r)
	}
	if v, ok := m.get("still"); !ok || v != "up" {
		t.Fatalf("get after bad input: %q %v", v, ok)
	}
}
