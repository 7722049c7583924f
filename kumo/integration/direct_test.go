package integration

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"kumofs/internal/httpd"
	"kumofs/internal/localcluster"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// startGateway starts another kumo-gateway for c on a free port and
// returns it once it answers a set.
func startGateway(t *testing.T, c *localcluster.Cluster, name string, extra ...string) *localcluster.Proc {
	t.Helper()
	port, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	log := filepath.Join(c.Dir(), name+".log")
	p := &localcluster.Proc{Name: name, Path: filepath.Join(c.BinDir(), "kumo-gateway"), Addr: addr, LogPath: log,
		Args: append([]string{"-m", c.Manager(0), "-t", addr, "-o", log}, extra...)}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	eventually(t, 20*time.Second, name+" answering", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("set probe-" + name + " 0 0 1\r\nx\r\n")); err != nil {
			return false
		}
		b := make([]byte, 8)
		n, _ := conn.Read(b)
		return string(b[:n]) == "STORED\r\n"
	})
	return p
}

// directCount scrapes kumo_direct_sets_total{result} from a daemon's
// /metrics (--http).
func directCount(t *testing.T, p *localcluster.Proc, result string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := httpd.Scrape(ctx, httpURL(t, p)+"/metrics")
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	v, ok := got[`kumo_direct_sets_total{result="`+result+`"}`]
	if !ok {
		t.Fatalf("%s: no kumo_direct_sets_total{result=%q}", p, result)
	}
	return v
}

// Ensure that plain sets go to every owner at once (direct sets), and that
// sets racing on a few keys through two gateways, mixed with appends and
// deletes through the coordinators, leave every owner of each key with the
// same version, the one the gateways then read. In a cluster whose first
// server embeds a gateway, that gateway sends direct sets too, and its
// server takes them from the kumo-gateway.
func TestDirectSetsConverge(t *testing.T) {
	t.Parallel()
	h := []string{"--http", "127.0.0.1:0"}
	eachGateway(t, localcluster.Options{ExtraServerArgs: h}, func(t *testing.T, c *localcluster.Cluster) {
		testDirectSetsConverge(t, c, h)
	})
}

func testDirectSetsConverge(t *testing.T, c *localcluster.Cluster, h []string) {
	g2 := startGateway(t, c, "gateway-2", h...)

	// Once the gateway knows that no rebalance is under way (the attach
	// at start may still be copying), a lone set goes direct: every
	// server stores it as a direct set.
	for _, addr := range []string{g2.Addr, c.Gateway()} {
		m := dial(t, addr)
		before := make([]float64, c.NumServers())
		for i := range before {
			before[i] = directCount(t, c.Server(i), "stored")
		}
		eventually(t, 30*time.Second, "a set sent direct through "+addr, func() bool {
			if r := m.set("one", "v"); r != "STORED\r\n" {
				t.Fatalf("set: %q", r)
			}
			for i := range before {
				if directCount(t, c.Server(i), "stored") <= before[i] {
					return false
				}
			}
			return true
		})
	}
	m := dial(t, c.Gateway())

	keys := []string{"hot-a", "hot-b", "hot-c"}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		addr := c.Gateway()
		if w%2 == 1 {
			addr = g2.Addr
		}
		m := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				k := keys[(i+w)%len(keys)]
				var r string
				switch {
				case i%25 == 24:
					r = m.cmd("delete " + k + "\r\n")
					if r != "DELETED\r\n" && r != "NOT_FOUND\r\n" {
						t.Errorf("delete %s: %q", k, r)
						return
					}
				case i%10 == 9:
					r = m.cmd(fmt.Sprintf("append %s 0 0 2\r\n+%d\r\n", k, w))
					if r != "STORED\r\n" && r != "NOT_STORED\r\n" {
						t.Errorf("append %s: %q", k, r)
						return
					}
				default:
					if r = m.set(k, fmt.Sprintf("w%d-%d", w, i)); r != "STORED\r\n" {
						t.Errorf("set %s: %q", k, r)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	hs := whs(t, c.Manager(0))
	m2 := dial(t, g2.Addr)
	for _, k := range keys {
		o := hs.Lookup([]byte(k))
		var first string
		for i := 0; i < o.Len(); i++ {
			a := o.At(i).Addr.String()
			cl := rpc.Dial(a, rpc.Options{CallTimeout: 5 * time.Second})
			v, ok := getRaw(t, cl, k)
			cl.Close()
			got := fmt.Sprintf("present %v tombstone %v clock %x value %q", ok, v.Tombstone, v.Clock, v.Data)
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatalf("%s: owners disagree: %s holds %s, %s holds %s", k, o.At(0).Addr, first, a, got)
			}
		}
		v1, ok1 := m.get(k)
		v2, ok2 := m2.get(k)
		if v1 != v2 || ok1 != ok2 {
			t.Fatalf("%s: gateways read %q (%v) and %q (%v)", k, v1, ok1, v2, ok2)
		}
		t.Logf("%s: %s", k, first)
	}
	t.Logf("direct sets: gateway 2 stored %v refused %v; server 1 stored %v refused %v",
		directCount(t, g2, "stored"), directCount(t, g2, "refused"),
		directCount(t, c.Server(0), "stored"), directCount(t, c.Server(0), "refused"))
}

// Ensure that a write that reached only one owner, from a writer whose
// connection then closed (it died between its writes to the owners), is
// pushed by that owner to the others: every owner ends with it, not just
// the one (see kumo/server's repair.go). The writer is a gateway's direct
// set, or a coordinator's replication.
func TestWriteRepairedAfterWriterDies(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"direct set", "replication"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			testWriteRepaired(t, method)
		})
	}
}

func testWriteRepaired(t *testing.T, method string) {
	h := []string{"--http", "127.0.0.1:0"}
	c := localcluster.StartT(t, localcluster.Options{ExtraServerArgs: h})
	m := dial(t, c.Gateway())
	const key = "repair-me"
	if r := m.set(key, "old"); r != "STORED\r\n" {
		t.Fatalf("set: %q", r)
	}
	// The fake writer decides under the hash space every server writes
	// and reads by once no rebalance is under way.
	cl := rpc.Dial(c.Server(0).Addr, rpc.Options{CallTimeout: 5 * time.Second})
	defer cl.Close()
	var wc uint64
	eventually(t, 30*time.Second, "whs = rhs on server 1", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := cl.Call(ctx, wire.SrvHashSpaceRequest, func(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) })
		if err != nil {
			return false
		}
		defer res.Release()
		sp, err := wire.ReadSpaces(res.Bytes(), 2)
		if err != nil {
			t.Fatalf("hash spaces: %v", err)
		}
		wc = sp.W.Clock()
		return wc == sp.R.Clock() && len(sp.W.Nodes()) == c.NumServers()
	})
	old, ok := getRaw(t, cl, key)
	if !ok {
		t.Fatal("server 1 lacks the key")
	}
	ct := old.Clock + 1000
	dbkey := wire.AppendDBKey(nil, ring.Hash([]byte(key)), []byte(key))
	value := func(b []byte) []byte {
		v := wire.Value{Clock: ct, Data: []byte("new")}
		b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
		return wire.AppendDBValue(b, &v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res rpc.Result
	var err error
	if method == "direct set" {
		res, err = cl.Call(ctx, wire.SrvSetDirect, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 4)
			b = msgpack.AppendUint(b, ct)
			b = msgpack.AppendRaw(b, dbkey)
			return msgpack.AppendUint(value(b), wc)
		})
	} else {
		res, err = cl.Call(ctx, wire.SrvReplicateSet, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 5)
			b = msgpack.AppendUint(b, ct)
			b = msgpack.AppendUint(b, 0) // flags
			b = msgpack.AppendRaw(b, dbkey)
			return msgpack.AppendUint(value(b), wc)
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	p := res.Bytes()
	if method == "direct set" {
		_, p, _ = msgpack.ReadArrayHeader(p)
	}
	stored, _, err := msgpack.ReadBool(p)
	res.Release()
	if err != nil || !stored {
		t.Fatalf("%s to server 1: stored %v, %v", method, stored, err)
	}
	for i := 1; i < c.NumServers(); i++ {
		if v, _ := getRaw(t, rpcTo(t, c.Server(i).Addr), key); string(v.Data) != "old" {
			t.Fatalf("server %d holds %q before the repair", i+1, v.Data)
		}
	}
	cl.Close() // the writer is gone
	for i := 1; i < c.NumServers(); i++ {
		rc := rpcTo(t, c.Server(i).Addr)
		eventually(t, 20*time.Second, fmt.Sprintf("server %d repaired", i+1), func() bool {
			v, _ := getRaw(t, rc, key)
			return string(v.Data) == "new" && v.Clock == ct
		})
	}
	// A replica stores the record before its reply reaches server 1,
	// which counts the record when the reply arrives: poll for the count.
	want, url := float64(c.NumServers()-1), httpURL(t, c.Server(0))+"/metrics"
	var n float64
	eventually(t, 20*time.Second, "server 1 counted the repaired records", func() bool {
		got, err := httpd.Scrape(context.Background(), url)
		n = got[`kumo_repair_records_total{result="ok"}`]
		return err == nil && n >= want
	})
	if n != want {
		t.Errorf("server 1 counts %v repaired records, want %v", n, want)
	}
	if v, ok := m.get(key); !ok || v != "new" {
		t.Errorf("get after the repair: %q, %v", v, ok)
	}
}

// rpcTo returns an RPC client for addr, closed when the test ends.
func rpcTo(t *testing.T, addr string) *rpc.Client {
	t.Helper()
	c := rpc.Dial(addr, rpc.Options{CallTimeout: 5 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}
