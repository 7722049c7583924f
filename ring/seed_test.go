package ring

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"kumofs/proto/msgpack"
)

// kumofs seed of the golden cluster, 19802 fault: [[raw7 x3], clock 4].
const goldenSeedHex = "92" + "93" +
	"a7" + "01" + "4d5b" + "7f000001" +
	"a7" + "00" + "4d5a" + "7f000001" +
	"a7" + "01" + "4d59" + "7f000001" +
	"04"

func TestSeedGolden(t *testing.T) {
	hs := goldenSpace(t)
	hs, _ = hs.WithFault(mustAddr(t, "127.0.0.1:19802"), 4)
	got := hs.AppendSeed([]byte("x"))
	want, _ := hex.DecodeString(goldenSeedHex)
	if !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatalf("AppendSeed = %x, want %x", got[1:], want)
	}
	back, rest, err := ReadSeed(append(want, 0xc0))
	if err != nil || !bytes.Equal(rest, []byte{0xc0}) {
		t.Fatalf("ReadSeed: %v rest %x", err, rest)
	}
	if !back.Equal(hs) || back.Clock() != 4 {
		t.Fatalf("round trip: %v clock %d", back.Nodes(), back.Clock())
	}
	for _, k := range []string{"a", "k1", "foo"} {
		if back.Lookup([]byte(k)) != back.Lookup([]byte(k)) ||
			back.Lookup([]byte(k)).Index(0) != hs.Lookup([]byte(k)).Index(0) {
			t.Errorf("ring differs after round trip for %q", k)
		}
	}
}

func TestSeedRoundTrip(t *testing.T) {
	var nilHS *HashSpace
	v6 := mustAddr(t, "[fe80::1%2]:19800")
	for _, hs := range []*HashSpace{
		nilHS,
		New(nil, 0),
		New([]Node{{Addr: v6, Active: true}, {Addr: mustAddr(t, "10.0.0.1:1")}}, 1<<40|7),
	} {
		b := hs.AppendSeed(nil)
		back, rest, err := ReadSeed(b)
		if err != nil || len(rest) != 0 {
			t.Fatalf("ReadSeed(%x): %v, rest %x", b, err, rest)
		}
		if !back.Equal(hs) || back.Clock() != hs.Clock() {
			t.Errorf("round trip %x: %v", b, back.Nodes())
		}
	}
}

// TestSeedAcceptsModernRaw: a peer may send the nodes as bin or str.
func TestSeedAcceptsModernRaw(t *testing.T) {
	b := []byte{0x92, 0x91, 0xc4, 7, 1, 0x4d, 0x59, 127, 0, 0, 1, 0xcf, 0, 0, 0, 1, 0, 0, 0, 2}
	hs, _, err := ReadSeed(b)
	if err != nil {
		t.Fatal(err)
	}
	if hs.Clock() != 1<<32|2 || hs.NumNodes() != 1 || hs.Node(0).Addr.String() != "127.0.0.1:19801" || !hs.Node(0).Active {
		t.Fatalf("got %v clock %x", hs.Nodes(), hs.Clock())
	}
}

func TestSeedErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"not array", "c0"},
		{"three elements", "93" + "90" + "00" + "00"},
		{"nodes not array", "92" + "00" + "00"},
		{"node not raw", "92" + "91" + "00" + "00"},
		{"node 6 bytes", "92" + "91" + "a6" + "4d5b7f000001" + "00"},
		{"node 8 bytes", "92" + "91" + "a8" + "014d5b7f00000100" + "00"},
		{"clock negative", "92" + "90" + "ff"},
		{"clock raw", "92" + "90" + "a0"},
		{"huge count", "92" + "dd7fffffff" + "00"},
		{"short", goldenSeedHex[:len(goldenSeedHex)-2]},
	} {
		b, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatal(err)
		}
		if hs, _, err := ReadSeed(b); !errors.Is(err, ErrBadSeed) {
			t.Errorf("%s: ReadSeed = %v, %v; want ErrBadSeed", tc.name, hs, err)
		}
	}
}

// TestSeedOneByteAtATime feeds the seed as it would arrive from a slow
// stream: every proper prefix is reported as short input, and the whole
// seed decodes.
func TestSeedOneByteAtATime(t *testing.T) {
	full, _ := hex.DecodeString(goldenSeedHex)
	for n := 0; n < len(full); n++ {
		_, _, err := ReadSeed(full[:n])
		if !errors.Is(err, ErrBadSeed) || !errors.Is(err, msgpack.ErrShort) {
			t.Fatalf("prefix of %d bytes: %v, want ErrBadSeed wrapping ErrShort", n, err)
		}
	}
	if _, _, err := ReadSeed(full); err != nil {
		t.Fatal(err)
	}
}

func FuzzReadSeed(f *testing.F) {
	full, _ := hex.DecodeString(goldenSeedHex)
	f.Add(full)
	f.Add(New(nil, 0).AppendSeed(nil))
	finer, _ := hex.DecodeString(finerSeedHex)
	f.Add(finer)
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, rest, err := ReadSeed(b)
		if err != nil {
			if !errors.Is(err, ErrBadSeed) {
				t.Fatalf("error %v does not wrap ErrBadSeed", err)
			}
			return
		}
		// Whatever decodes re-encodes to a seed that decodes to the same space.
		again, rest2, err := ReadSeed(hs.AppendSeed(nil))
		if err != nil || len(rest2) != 0 || !again.Equal(hs) || again.Clock() != hs.Clock() ||
			again.VirtualNodesPerServer() != hs.VirtualNodesPerServer() {
			t.Fatalf("re-encode: %v", err)
		}
		if len(rest) > len(b) {
			t.Fatal("rest longer than input")
		}
		for i := 0; i < hs.NumNodes() && i < 4; i++ {
			o := hs.Owners(uint64(i) * 0x9e3779b97f4a7c15)
			if o.Len() == 0 || o.Len() > 3 {
				t.Fatalf("%d owners", o.Len())
			}
		}
	})
}

// The golden cluster at 1024 virtual nodes: the kumofs seed plus a third
// element, the count (uint16 0x0400).
var finerSeedHex = "93" + goldenSeedHex[2:] + "cd0400"

func TestSeedVirtualNodes(t *testing.T) {
	hs := goldenSpace(t)
	hs, _ = hs.WithFault(mustAddr(t, "127.0.0.1:19802"), 4)
	finer, ok := hs.WithVirtualNodes(1024, 4)
	if !ok {
		t.Fatal("WithVirtualNodes(1024) changed nothing")
	}
	got := finer.AppendSeed(nil)
	if want, _ := hex.DecodeString(finerSeedHex); !bytes.Equal(got, want) {
		t.Fatalf("AppendSeed = %x, want %s", got, finerSeedHex)
	}
	back, rest, err := ReadSeed(got)
	if err != nil || len(rest) != 0 || back.VirtualNodesPerServer() != 1024 || !back.Equal(finer) || back.Equal(hs) {
		t.Fatalf("ReadSeed: %v, %d vnodes", err, back.VirtualNodesPerServer())
	}
	if len(back.ring) != 3*1024 {
		t.Fatalf("ring of %d points", len(back.ring))
	}

	// Back to the default: the seed is kumofs's again, byte for byte.
	def, ok := back.WithVirtualNodes(DefaultVirtualNodes, 4)
	if want, _ := hex.DecodeString(goldenSeedHex); !ok || !bytes.Equal(def.AppendSeed(nil), want) {
		t.Fatalf("default seed = %x", def.AppendSeed(nil))
	}
	// A kumofs seed decodes as 128, and so does an explicit 128.
	for _, h := range []string{goldenSeedHex, "93" + goldenSeedHex[2:] + "cc80"} {
		b, _ := hex.DecodeString(h)
		hs, _, err := ReadSeed(b)
		if err != nil || hs.VirtualNodesPerServer() != DefaultVirtualNodes || len(hs.ring) != 3*DefaultVirtualNodes {
			t.Errorf("%s: %v, %d vnodes", h, err, hs.VirtualNodesPerServer())
		}
	}
	// The bounds themselves.
	for _, v := range []int{MinVirtualNodes, MaxVirtualNodes} {
		hs := NewWithVirtualNodes(goldenSpace(t).Nodes(), 1, v)
		back, _, err := ReadSeed(hs.AppendSeed(nil))
		if err != nil || back.VirtualNodesPerServer() != v || !back.Equal(hs) {
			t.Errorf("%d vnodes: %v", v, err)
		}
	}
}

func TestSeedVirtualNodesErrors(t *testing.T) {
	body := goldenSeedHex[2:]
	for _, tc := range []struct {
		name string
		hex  string
	}{
		{"zero", "93" + body + "00"},
		{"4097", "93" + body + "cd1001"},
		{"huge", "93" + body + "cf" + "ffffffffffffffff"},
		{"negative", "93" + body + "ff"},
		{"raw", "93" + body + "a0"},
		{"nil", "93" + body + "c0"},
		{"missing", "93" + body},
		{"four elements", "94" + body + "cd0400" + "00"},
	} {
		b, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatal(tc.name, err)
		}
		if hs, _, err := ReadSeed(b); !errors.Is(err, ErrBadSeed) {
			t.Errorf("%s: ReadSeed = %v, %v; want ErrBadSeed", tc.name, hs, err)
		}
	}
	// Out of range wraps ErrBadVirtualNodes too.
	b, _ := hex.DecodeString("93" + body + "cd1001")
	if _, _, err := ReadSeed(b); !errors.Is(err, ErrBadVirtualNodes) {
		t.Errorf("4097: %v", err)
	}

	// Nodes times count is bounded by 2^20 points: 256 nodes of 4096 are
	// fine, 257 are not, nor are 8193 kumofs-form nodes. (Only the refusals
	// go through ReadSeed: building a ring of 2^20 points takes a second.)
	for _, tc := range []struct {
		nodes, vnodes int
		ok            bool
	}{
		{256, MaxVirtualNodes, true}, {8192, DefaultVirtualNodes, true}, {1024, 1024, true},
		{257, MaxVirtualNodes, false}, {8193, DefaultVirtualNodes, false}, {1025, 1024, false},
	} {
		if tooManyPoints(tc.nodes, tc.vnodes) == tc.ok {
			t.Errorf("tooManyPoints(%d, %d) = %v", tc.nodes, tc.vnodes, !tc.ok)
		}
		if tc.ok {
			continue
		}
		nodes := make([]Node, tc.nodes)
		for i := range nodes {
			nodes[i] = Node{Addr: AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}, 19800), Active: true}
		}
		// Encoded by hand: NewWithVirtualNodes would build the ring.
		b := (&HashSpace{nodes: nodes, clock: 1, vnodes: tc.vnodes}).AppendSeed(nil)
		if _, _, err := ReadSeed(b); !errors.Is(err, ErrBadSeed) {
			t.Errorf("%d nodes x %d: %v", tc.nodes, tc.vnodes, err)
		}
	}
}

// TestSeedVirtualNodesOneByteAtATime: every proper prefix of a seed with a
// count is short input, including the one that stops before the count.
func TestSeedVirtualNodesOneByteAtATime(t *testing.T) {
	full, _ := hex.DecodeString(finerSeedHex)
	for n := 0; n < len(full); n++ {
		_, _, err := ReadSeed(full[:n])
		if !errors.Is(err, ErrBadSeed) || !errors.Is(err, msgpack.ErrShort) {
			t.Fatalf("prefix of %d bytes: %v, want ErrBadSeed wrapping ErrShort", n, err)
		}
	}
	if hs, _, err := ReadSeed(full); err != nil || hs.VirtualNodesPerServer() != 1024 {
		t.Fatal(err)
	}
}

// TestSeedRingCache: decoding the same node list again shares the ring
// (flags and clock may differ); another order, another count or another
// address builds a new one, equal to a fresh build.
func TestSeedRingCache(t *testing.T) {
	nodes := []Node{
		{Addr: mustAddr(t, "10.9.0.1:19800"), Active: true},
		{Addr: mustAddr(t, "10.9.0.2:19800"), Active: true},
		{Addr: mustAddr(t, "10.9.0.3:19800"), Active: true},
	}
	decode := func(hs *HashSpace) *HashSpace {
		t.Helper()
		back, _, err := ReadSeed(hs.AppendSeed(nil))
		if err != nil || !back.Equal(hs) || back.Clock() != hs.Clock() || !sameRing(back, hs) {
			t.Fatalf("ReadSeed: %v", err)
		}
		return back
	}
	base := NewWithVirtualNodes(nodes, 1, 300)
	first := decode(base)
	fault, _ := base.WithFault(nodes[1].Addr, 2)
	again := decode(fault)
	if &again.ring[0] != &first.ring[0] {
		t.Error("same node list, other flag and clock: ring not shared")
	}
	if again.Node(1).Active || !first.Node(1).Active {
		t.Error("flags leaked through the cache")
	}
	others := []*HashSpace{
		NewWithVirtualNodes(nodes, 1, 301),
		NewWithVirtualNodes([]Node{nodes[1], nodes[0], nodes[2]}, 1, 300),
		NewWithVirtualNodes(nodes[:2], 1, 300),
		NewWithVirtualNodes(append(nodes[:2:2], Node{Addr: mustAddr(t, "10.9.0.4:19800")}), 1, 300),
	}
	for i, o := range others {
		if d := decode(o); &d.ring[0] == &first.ring[0] {
			t.Errorf("other %d shares the ring", i)
		}
	}
	// The four others pushed the first out of the cache.
	if d := decode(base); &d.ring[0] == &first.ring[0] {
		t.Error("cache holds more than 4 rings")
	}
	// Rings above maxCachedPoints are not kept.
	many := make([]Node, maxCachedPoints/MaxVirtualNodes+1)
	for i := range many {
		many[i] = Node{Addr: AddrFrom4([4]byte{10, 8, 0, byte(i + 1)}, 19800), Active: true}
	}
	huge := (&HashSpace{nodes: many, clock: 1, vnodes: MaxVirtualNodes}).AppendSeed(nil)
	h1, _, err1 := ReadSeed(huge)
	h2, _, err2 := ReadSeed(huge)
	if err1 != nil || err2 != nil || &h1.ring[0] == &h2.ring[0] {
		t.Errorf("large ring cached: %v %v", err1, err2)
	}
}

// TestSeedRingCacheConcurrent decodes seeds from several goroutines (run
// with -race).
func TestSeedRingCacheConcurrent(t *testing.T) {
	var seeds [][]byte
	for i := range 6 {
		seeds = append(seeds, NewWithVirtualNodes(goldenSpace(t).Nodes()[:1+i%3], uint64(i), 16+i).AppendSeed(nil))
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for i := range 200 {
				b := seeds[(g+i)%len(seeds)]
				hs, _, e := ReadSeed(b)
				if e != nil {
					err = e
				} else if want := NewWithVirtualNodes(hs.nodes, 0, hs.vnodes); !sameRing(hs, want) {
					err = errors.New("ring differs from a fresh build")
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkReadSeed48x1024(b *testing.B) {
	hs := NewWithVirtualNodes(deployment(48), 1, 1024)
	seed := hs.AppendSeed(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ReadSeed(seed); err != nil {
			b.Fatal(err)
		}
	}
}
