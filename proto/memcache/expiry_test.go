package memcache_test

import (
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clockedServer returns a moving clock at t0 and a function that sends a
// request on a new connection to a server on that clock and checks the
// replies.
func clockedServer(t *testing.T) (*testClock, func(req, want string)) {
	clk := &testClock{t: t0}
	s := &memcache.Server{Backend: memtest.New(clk.Now), Now: clk.Now}
	return clk, func(req, want string) {
		t.Helper()
		fc := &fakeConn{r: strings.NewReader(req)}
		s.ServeConn(fc)
		if fc.w.String() != want {
			t.Fatalf("%q: got %q, want %q", req, fc.w.String(), want)
		}
	}
}

// TestExptimeThroughServer drives relative, absolute and touched exptimes
// and a delayed flush_all through the text protocol with a moving clock.
func TestExptimeThroughServer(t *testing.T) {
	clk, say := clockedServer(t)
	say("set rel 0 10 1\r\nx\r\nset abs 0 1800000020 1\r\nx\r\nset tch 0 10 1\r\nx\r\ntouch tch 100\r\n", "STORED\r\nSTORED\r\nSTORED\r\nTOUCHED\r\n")
	clk.Add(10 * time.Second)
	say("get rel abs tch\r\n", "VALUE abs 0 1\r\nx\r\nVALUE tch 0 1\r\nx\r\nEND\r\n")
	say("gat 5 abs\r\n", "VALUE abs 0 1\r\nx\r\nEND\r\n")
	clk.Add(5 * time.Second)
	// flush_all n hides, n seconds on, what was stored before (see
	// flushDelay); flush_all 1 acts at once.
	say("get abs tch\r\nflush_all 3\r\n", "VALUE tch 0 1\r\nx\r\nEND\r\nOK\r\n")
	clk.Add(2 * time.Second)
	say("mg tch v t\r\n", "VA 1 t83\r\nx\r\n")
	clk.Add(time.Second)
	say("mg tch v\r\nset new 0 0 1\r\nx\r\nget new\r\n", "EN\r\nSTORED\r\nVALUE new 0 1\r\nx\r\nEND\r\n")
	say("set f1 0 0 1\r\nx\r\nflush_all 1\r\nget f1\r\n", "STORED\r\nOK\r\nEND\r\n")
}

// TestBinaryStat: the general group is a series of key/value packets with
// the request's opaque, ended by an empty packet.
func TestBinaryStat(t *testing.T) {
	s, _ := newTestServer(t)
	fc := &fakeConn{r: strings.NewReader(binReq(0x10, "", "", "", 42, 0))}
	s.ServeConn(fc)
	p := fc.w.Bytes()
	stats := map[string]string{}
	for len(p) > 0 {
		if len(p) < 24 || p[0] != 0x81 || p[1] != 0x10 || binary.BigEndian.Uint32(p[12:]) != 42 {
			t.Fatalf("bad packet %x", p[:min(24, len(p))])
		}
		kl := int(binary.BigEndian.Uint16(p[2:]))
		bl := int(binary.BigEndian.Uint32(p[8:]))
		if bl == 0 {
			if len(p) != 24 {
				t.Fatalf("data after the terminator")
			}
			break
		}
		stats[string(p[24:24+kl])] = string(p[24+kl : 24+bl])
		p = p[24+bl:]
	}
	if stats["version"] != memcache.DefaultVersion || stats["curr_items"] != "0" || stats["time"] != "1800000000" {
		t.Fatalf("stats %v", stats)
	}
}

// TestMetaLastAccess: mg l counts the seconds since the item was last
// read, or else stored; u reads without counting.
func TestMetaLastAccess(t *testing.T) {
	clk, say := clockedServer(t)
	say("set k 0 0 1\r\nx\r\n", "STORED\r\n")
	clk.Add(5 * time.Second)
	say("mg k l h\r\nmg k l h\r\n", "HD l5 h0\r\nHD l0 h1\r\n")
	clk.Add(3 * time.Second)
	say("mg k l u\r\nmg k l\r\nmg k l\r\n", "HD l3\r\nHD l3\r\nHD l0\r\n")
	clk.Add(2 * time.Second)
	say("get k\r\nmg k l\r\nset k 0 0 1\r\ny\r\nmg k h l\r\n", "VALUE k 0 1\r\nx\r\nEND\r\nHD l0\r\nSTORED\r\nHD h0 l0\r\n")
}
