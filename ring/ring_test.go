package ring

import (
	"crypto/sha1"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// goldenSpace is the cluster of kumofs-golden.md: servers attached in the
// order 19803, 19802, 19801 (the order the kumofs manager listed them).
func goldenSpace(t testing.TB) *HashSpace {
	t.Helper()
	var nodes []Node
	for _, s := range []string{"127.0.0.1:19803", "127.0.0.1:19802", "127.0.0.1:19801"} {
		nodes = append(nodes, Node{Addr: mustAddr(t, s), Active: true})
	}
	return New(nodes, 4)
}

func mustAddr(t testing.TB, s string) Addr {
	t.Helper()
	a, err := ParseAddr(s, 19800)
	if err != nil {
		t.Fatalf("ParseAddr(%q): %v", s, err)
	}
	return a
}

func TestHashGolden(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint64
	}{
		{"a", 0xfca7a5fa37e4f786},
		{"k1", 0xa2bfc3c15919aba2},
		{"foo", 0xdb0f3feab5c7ee0b},
	} {
		if got := Hash([]byte(tc.key)); got != tc.want {
			t.Errorf("Hash(%q) = %016x, want %016x", tc.key, got, tc.want)
		}
		sum := sha1.Sum([]byte(tc.key))
		if got := binary.LittleEndian.Uint64(sum[:]); got != tc.want {
			t.Errorf("LE64(SHA1(%q)) = %016x", tc.key, got)
		}
	}
}

func TestAssignGolden(t *testing.T) {
	hs := goldenSpace(t)
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"a", []string{"127.0.0.1:19803", "127.0.0.1:19801", "127.0.0.1:19802"}},
		{"k1", []string{"127.0.0.1:19801", "127.0.0.1:19802", "127.0.0.1:19803"}},
		{"foo", []string{"127.0.0.1:19803", "127.0.0.1:19802", "127.0.0.1:19801"}},
	} {
		o := hs.Lookup([]byte(tc.key))
		var got []string
		for i := 0; i < o.Len(); i++ {
			got = append(got, o.At(i).Addr.String())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("owners of %q = %v, want %v", tc.key, got, tc.want)
		}
		if c, ok := o.Coordinator(); !ok || c.Addr.String() != tc.want[0] {
			t.Errorf("coordinator of %q = %v %v", tc.key, c, ok)
		}
	}
}

func TestDumpGolden(t *testing.T) {
	hs := goldenSpace(t)
	vn := hs.VirtualNodes()
	if len(vn) != 384 {
		t.Fatalf("%d virtual nodes, want 384", len(vn))
	}
	var sb strings.Builder
	per := map[Addr]int{}
	for i, v := range vn {
		fmt.Fprintf(&sb, "%016x  %s\n", v.Hash, v.Node.Addr)
		per[v.Node.Addr]++
		if i > 0 && vn[i-1].Hash > v.Hash {
			t.Fatalf("ring not sorted at %d", i)
		}
	}
	if first, _, _ := strings.Cut(sb.String(), "\n"); first != "002de3615913c491  127.0.0.1:19803" {
		t.Errorf("first dump line %q", first)
	}
	for a, n := range per {
		if n != DefaultVirtualNodes {
			t.Errorf("%v has %d virtual nodes", a, n)
		}
	}
	golden(t, "dump3.golden", sb.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file", name)
	}
}

// TestVirtualNodeChain checks the chain x0 = h(dump), x_i = h(LE64(x_{i-1})).
func TestVirtualNodeChain(t *testing.T) {
	a := mustAddr(t, "127.0.0.1:19803")
	hs := New([]Node{{Addr: a, Active: true}}, 0)
	want := map[uint64]bool{}
	x := Hash([]byte{0x4d, 0x5b, 127, 0, 0, 1}) // 19803 = 0x4d5b
	for i := 0; i < DefaultVirtualNodes; i++ {
		want[x] = true
		x = Hash(binary.LittleEndian.AppendUint64(nil, x))
	}
	for _, v := range hs.VirtualNodes() {
		if !want[v.Hash] {
			t.Fatalf("unexpected virtual node %016x", v.Hash)
		}
		delete(want, v.Hash)
	}
	if len(want) != 0 {
		t.Fatalf("%d virtual nodes missing", len(want))
	}
}

// TestStableTies builds a ring whose hashes all tie (the same address twice):
// the earlier node in the list must come first at every point.
func TestStableTies(t *testing.T) {
	a := mustAddr(t, "127.0.0.1:1")
	r := buildRing([]Node{{Addr: a}, {Addr: a}, {Addr: a}}, 16)
	for i, v := range r {
		if int(v.node) != i%3 {
			t.Fatalf("ring[%d] is node %d, want %d", i, v.node, i%3)
		}
	}
}

func TestOwnersWalk(t *testing.T) {
	hs := goldenSpace(t)
	r := hs.ring
	for _, tc := range []struct {
		name string
		h    uint64
		at   int // ring index the walk must start at
	}{
		{"zero", 0, 0},
		{"exact", r[10].hash, 10},
		{"between", r[10].hash + 1, 11},
		{"last", r[len(r)-1].hash, len(r) - 1},
		{"wrap", r[len(r)-1].hash + 1, 0},
		{"max", math.MaxUint64, 0},
	} {
		if tc.name == "wrap" && r[len(r)-1].hash == math.MaxUint64 {
			continue
		}
		o := hs.Owners(tc.h)
		if o.Len() != 3 {
			t.Fatalf("%s: %d owners", tc.name, o.Len())
		}
		if o.Index(0) != int(r[tc.at].node) {
			t.Errorf("%s: primary %d, want %d", tc.name, o.Index(0), r[tc.at].node)
		}
		// Brute force: walk clockwise collecting distinct nodes.
		var want []int
		for i := tc.at; len(want) < 3; i = (i + 1) % len(r) {
			n := int(r[i].node)
			dup := false
			for _, w := range want {
				dup = dup || w == n
			}
			if !dup {
				want = append(want, n)
			}
		}
		for i, w := range want {
			if o.Index(i) != w {
				t.Errorf("%s: owner %d is %d, want %d", tc.name, i, o.Index(i), w)
			}
		}
	}
}

func TestOwnersSmall(t *testing.T) {
	a1, a2 := mustAddr(t, "127.0.0.1:1"), mustAddr(t, "127.0.0.1:2")
	var nilHS *HashSpace
	for _, tc := range []struct {
		name string
		hs   *HashSpace
		want int
	}{
		{"nil", nilHS, 0},
		{"empty", New(nil, 0), 0},
		{"one", New([]Node{{Addr: a1, Active: true}}, 0), 1},
		{"two", New([]Node{{Addr: a1, Active: true}, {Addr: a2}}, 0), 2},
	} {
		for _, h := range []uint64{0, 1 << 63, math.MaxUint64} {
			o := tc.hs.Owners(h)
			if o.Len() != tc.want {
				t.Errorf("%s: %d owners, want %d", tc.name, o.Len(), tc.want)
			}
			if o.Len() == 0 {
				if _, ok := o.Coordinator(); ok {
					t.Errorf("%s: coordinator of no owners", tc.name)
				}
			}
		}
	}
}

func TestOwnersFault(t *testing.T) {
	hs := goldenSpace(t)
	a := []byte("a") // owners 19803, 19801, 19802
	s3, s1, s2 := mustAddr(t, "127.0.0.1:19803"), mustAddr(t, "127.0.0.1:19801"), mustAddr(t, "127.0.0.1:19802")
	f, ok := hs.WithFault(s3, 5)
	if !ok {
		t.Fatal("WithFault: not found")
	}
	o := f.Lookup(a)
	if o.Len() != 3 || o.At(0).Addr != s3 || o.At(0).Active {
		t.Fatalf("fault node must stay first: %v", o.At(0))
	}
	if c, ok := o.Coordinator(); !ok || c.Addr != s1 {
		t.Errorf("coordinator %v %v, want %v", c, ok, s1)
	}
	if !o.IsCoordinator(s1) || o.IsCoordinator(s3) {
		t.Error("IsCoordinator")
	}
	if !o.Contains(s3) || o.ContainsActive(s3) || !o.ContainsActive(s2) {
		t.Error("Contains/ContainsActive")
	}
	if o.ActiveLen() != 2 {
		t.Errorf("ActiveLen %d", o.ActiveLen())
	}
	// The original is untouched.
	if c, _ := hs.Lookup(a).Coordinator(); c.Addr != s3 {
		t.Errorf("edit changed the original: coordinator %v", c)
	}
	all := f
	for _, s := range []Addr{s1, s2} {
		all, _ = all.WithFault(s, 6)
	}
	if !all.Empty() {
		t.Error("all fault: not Empty")
	}
	if _, ok := all.Lookup(a).Coordinator(); ok {
		t.Error("all fault: coordinator found")
	}
}

func TestEdits(t *testing.T) {
	s1, s2, s3 := mustAddr(t, "127.0.0.1:19801"), mustAddr(t, "127.0.0.1:19802"), mustAddr(t, "127.0.0.1:19803")
	other := mustAddr(t, "127.0.0.1:1")
	hs := New(nil, 0)
	if !hs.Empty() || hs.NumNodes() != 0 {
		t.Fatal("new empty")
	}
	hs = hs.WithServerAdded(s3, 1).WithServerAdded(s2, 2).WithServerAdded(s1, 3)
	if !hs.Equal(goldenSpace(t)) || hs.Clock() != 3 {
		t.Fatalf("added: %v clock %d", hs.Nodes(), hs.Clock())
	}
	if again := hs.WithServerAdded(s2, 4); again.NumNodes() != 3 || again.Clock() != 4 {
		t.Errorf("re-adding duplicated: %v", again.Nodes())
	}

	f, ok := hs.WithFault(s2, 10)
	if !ok || f.Clock() != 10 || f.IsActive(s2) || !f.Contains(s2) || hs.Equal(f) {
		t.Fatalf("WithFault: %v", f.Nodes())
	}
	if &f.ring[0] != &hs.ring[0] {
		t.Error("WithFault rebuilt the ring")
	}
	if x, ok := f.WithFault(other, 11); ok || x != f {
		t.Error("WithFault of a stranger changed something")
	}
	r, ok := f.WithRecovered(s2, 12)
	if !ok || !r.Equal(hs) || r.Clock() != 12 {
		t.Errorf("WithRecovered: %v", r.Nodes())
	}
	if _, ok := f.WithRecovered(other, 13); ok {
		t.Error("WithRecovered of a stranger")
	}
	if back := f.WithServerAdded(s2, 14); !back.Equal(hs) {
		t.Errorf("WithServerAdded of a fault node: %v", back.Nodes())
	}

	d, ok := f.WithoutFaults(20)
	if !ok || d.NumNodes() != 2 || d.Contains(s2) || d.Clock() != 20 || len(d.ring) != 2*DefaultVirtualNodes {
		t.Fatalf("WithoutFaults: %v", d.Nodes())
	}
	if x, ok := d.WithoutFaults(21); ok || x != d {
		t.Error("WithoutFaults without faults changed something")
	}
	want := New([]Node{{Addr: s3, Active: true}, {Addr: s1, Active: true}}, 0)
	if !d.Equal(want) {
		t.Errorf("WithoutFaults kept order? %v", d.Nodes())
	}
	for _, k := range []string{"a", "k1", "foo", "x"} {
		if d.Lookup([]byte(k)) != d.Lookup([]byte(k)) || d.Lookup([]byte(k)).Index(0) != want.Lookup([]byte(k)).Index(0) {
			t.Errorf("rebuilt ring differs for %q", k)
		}
	}

	w, ok := hs.WithoutServer(s3, 30)
	if !ok || w.Contains(s3) || w.NumNodes() != 2 || w.Index(s2) != 0 {
		t.Fatalf("WithoutServer: %v", w.Nodes())
	}
	if _, ok := w.WithoutServer(s3, 31); ok {
		t.Error("WithoutServer twice")
	}
	if c := hs.WithClock(99); c.Clock() != 99 || !c.Equal(hs) || hs.Clock() != 3 {
		t.Error("WithClock")
	}
}

func TestEqual(t *testing.T) {
	a, b := mustAddr(t, "127.0.0.1:1"), mustAddr(t, "127.0.0.1:2")
	var nilHS *HashSpace
	x := New([]Node{{a, true}, {b, true}}, 1)
	for _, tc := range []struct {
		name string
		o    *HashSpace
		want bool
	}{
		{"same, other clock", New([]Node{{a, true}, {b, true}}, 2), true},
		{"order", New([]Node{{b, true}, {a, true}}, 1), false},
		{"flag", New([]Node{{a, true}, {b, false}}, 1), false},
		{"shorter", New([]Node{{a, true}}, 1), false},
		{"vnodes", newHashSpace([]Node{{a, true}, {b, true}}, 1, 4), false},
		{"nil", nilHS, false},
	} {
		if got := x.Equal(tc.o); got != tc.want {
			t.Errorf("%s: Equal = %v", tc.name, got)
		}
	}
	if !nilHS.Equal(New(nil, 5)) || !New(nil, 0).Equal(nilHS) {
		t.Error("nil and empty differ")
	}
}

func TestOwnersAllocs(t *testing.T) {
	hs := goldenSpace(t)
	key := []byte("some-key")
	var sink int
	n := testing.AllocsPerRun(100, func() {
		o := hs.Lookup(key)
		if c, ok := o.Coordinator(); ok {
			sink += int(c.Addr.Port())
		}
		sink += o.Len()
	})
	if n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func BenchmarkOwners(b *testing.B) {
	hs := goldenSpace(b)
	b.ReportAllocs()
	h := uint64(0x9e3779b97f4a7c15)
	for b.Loop() {
		o := hs.Owners(h)
		h += 0x9e3779b97f4a7c15
		if o.Len() != 3 {
			b.Fatal("owners")
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	hs := goldenSpace(b)
	key := []byte("user:1234567890")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := hs.Lookup(key).Coordinator(); !ok {
			b.Fatal("no coordinator")
		}
	}
}

func BenchmarkOwners64Servers(b *testing.B) {
	var nodes []Node
	for i := range 64 {
		nodes = append(nodes, Node{Addr: AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}, 19800), Active: true})
	}
	hs := New(nodes, 0)
	b.ReportAllocs()
	h := uint64(0x9e3779b97f4a7c15)
	for b.Loop() {
		hs.Owners(h)
		h += 0x9e3779b97f4a7c15
	}
}

func BenchmarkNew3(b *testing.B) {
	nodes := goldenSpace(b).Nodes()
	b.ReportAllocs()
	for b.Loop() {
		New(nodes, 0)
	}
}

// TestConcurrentSwap is the gateway's pattern: readers look keys up through
// an atomic pointer while the writer replaces the hash space as a whole.
func TestConcurrentSwap(t *testing.T) {
	base := goldenSpace(t)
	var cur atomic.Pointer[HashSpace]
	cur.Store(base)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte("k0")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key[1] = byte(i)
				o := cur.Load().Lookup(key)
				if o.Len() != 3 {
					t.Errorf("%d owners", o.Len())
					return
				}
				o.Coordinator()
			}
		}()
	}
	addrs := base.Nodes()
	for i := range 300 {
		hs := cur.Load()
		a := addrs[i%3].Addr
		if hs.IsActive(a) {
			hs, _ = hs.WithFault(a, uint64(i))
		} else {
			hs, _ = hs.WithRecovered(a, uint64(i))
		}
		cur.Store(hs)
	}
	close(stop)
	wg.Wait()
}
