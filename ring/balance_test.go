package ring

import (
	"errors"
	"math"
	"math/big"
	"slices"
	"strconv"
	"testing"
)

// deployment returns n servers 10.0.0.1.. on port 19800, as kumohash
// -servers generates them.
func deployment(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{Addr: AddrFrom4([4]byte{10, 0, byte(i / 254), byte(i%254 + 1)}, 19800), Active: true}
	}
	return nodes
}

// bigShares recomputes Shares independently: big integers, the public
// VirtualNodes and Owners (binary search), and the arc of each point taken
// as (previous point, point] with the first arc wrapping.
func bigShares(hs *HashSpace) (coord, owner []*big.Int) {
	vn := hs.VirtualNodes()
	coord = make([]*big.Int, hs.NumNodes())
	owner = make([]*big.Int, hs.NumNodes())
	for i := range coord {
		coord[i], owner[i] = new(big.Int), new(big.Int)
	}
	ring64 := new(big.Int).Lsh(big.NewInt(1), 64)
	for i, v := range vn {
		arc := new(big.Int).SetUint64(v.Hash)
		if i == 0 {
			arc.Add(arc, ring64)
			arc.Sub(arc, new(big.Int).SetUint64(vn[len(vn)-1].Hash))
		} else {
			arc.Sub(arc, new(big.Int).SetUint64(vn[i-1].Hash))
		}
		o := hs.Owners(v.Hash)
		coord[o.Index(0)].Add(coord[o.Index(0)], arc)
		for j := 0; j < o.Len(); j++ {
			owner[o.Index(j)].Add(owner[o.Index(j)], arc)
		}
	}
	return coord, owner
}

func fraction(x *big.Int) float64 {
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(x), new(big.Float).SetMantExp(big.NewFloat(1), 64)).Float64()
	return f
}

func TestSharesExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		hs   *HashSpace
	}{
		{"golden", goldenSpace(t)},
		{"one vnode", NewWithVirtualNodes(deployment(5), 0, 1)},
		{"two vnodes", NewWithVirtualNodes(deployment(4), 0, 2)},
		{"24x1024", NewWithVirtualNodes(deployment(24), 0, 1024)},
		{"one server", New(deployment(1), 0)},
		{"two servers", New(deployment(2), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.hs.Shares()
			coord, owner := bigShares(tc.hs)
			sumC, sumO := 0.0, 0.0
			for i, s := range got {
				if s.Node != tc.hs.Node(i) {
					t.Fatalf("share %d is %v", i, s.Node)
				}
				// Both sides are one rounding from the same integer.
				if s.Coordinator != fraction(coord[i]) || s.Owner != fraction(owner[i]) {
					t.Errorf("%v: %v %v, want %v %v", s.Node.Addr, s.Coordinator, s.Owner, fraction(coord[i]), fraction(owner[i]))
				}
				sumC += s.Coordinator
				sumO += s.Owner
			}
			wantO := float64(min(Replicas, tc.hs.NumNodes()))
			if math.Abs(sumC-1) > 1e-12 || math.Abs(sumO-wantO) > 1e-12 {
				t.Errorf("sums %v %v", sumC, sumO)
			}
		})
	}
}

// TestSharesWholeRing: a single point, or points that all tie, own all 2^64
// hashes, which does not fit in a uint64.
func TestSharesWholeRing(t *testing.T) {
	one := NewWithVirtualNodes(deployment(1), 0, 1)
	if s := one.Shares(); len(s) != 1 || s[0].Coordinator != 1 || s[0].Owner != 1 {
		t.Errorf("one point: %+v", s)
	}
	// The same address twice: every point ties, and the earlier node comes
	// first, so it coordinates everything; both own everything.
	a := mustAddr(t, "127.0.0.1:1")
	twice := NewWithVirtualNodes([]Node{{a, true}, {a, true}}, 0, 3)
	s := twice.Shares()
	if s[0].Coordinator != 1 || s[1].Coordinator != 0 || s[0].Owner != 1 || s[1].Owner != 1 {
		t.Errorf("tied: %+v", s)
	}
	var nilHS *HashSpace
	if nilHS.Shares() != nil || New(nil, 0).Shares() != nil {
		t.Error("empty space has shares")
	}
	if sp := SpreadOf(nil); sp != (Spread{}) {
		t.Errorf("SpreadOf(nil) = %+v", sp)
	}
}

// TestSharesIgnoreFlags: a share is placement; a fault server keeps it.
func TestSharesIgnoreFlags(t *testing.T) {
	hs := goldenSpace(t)
	f, _ := hs.WithFault(hs.Node(1).Addr, 9)
	a, b := hs.Shares(), f.Shares()
	for i := range a {
		if a[i].Coordinator != b[i].Coordinator || a[i].Owner != b[i].Owner || b[i].Node != f.Node(i) {
			t.Errorf("%d: %+v vs %+v", i, a[i], b[i])
		}
	}
}

// TestSharesSampled cross-checks the arcs against looking up keys: with
// 30000 keys on 6 servers each share is within a few standard errors.
func TestSharesSampled(t *testing.T) {
	hs := New(deployment(6), 0)
	const keys = 30000
	count := make([]int, hs.NumNodes())
	for i := range keys {
		count[hs.Lookup([]byte("key:"+strconv.Itoa(i))).Index(0)]++
	}
	for i, s := range hs.Shares() {
		got := float64(count[i]) / keys
		if math.Abs(got-s.Coordinator) > 4*math.Sqrt(s.Coordinator/keys) {
			t.Errorf("%v: sampled %v, exact %v", s.Node.Addr, got, s.Coordinator)
		}
	}
}

// TestBalance pins the balance table of docs/capacity.md: kumofs's 128
// virtual nodes give a busiest/mean near 1.2 at 24 servers, and 1024 keep the
// busiest server within 1.10 of the mean from 3 to 48 servers.
func TestBalance(t *testing.T) {
	for _, tc := range []struct {
		servers, vnodes    int
		coordMax, ownerMax string // rounded to 3 decimals, as in the table
	}{
		{3, 128, "1.054", "1.000"},
		{6, 128, "1.089", "1.068"},
		{12, 128, "1.208", "1.069"},
		{24, 128, "1.190", "1.079"},
		{48, 128, "1.221", "1.108"},
		{3, 1024, "1.040", "1.000"},
		{6, 1024, "1.060", "1.021"},
		{12, 1024, "1.041", "1.023"},
		{24, 1024, "1.060", "1.029"},
		{48, 1024, "1.076", "1.030"},
	} {
		if testing.Short() && tc.servers > 24 {
			continue
		}
		sp := SpreadOf(NewWithVirtualNodes(deployment(tc.servers), 0, tc.vnodes).Shares())
		c := strconv.FormatFloat(sp.CoordinatorMax, 'f', 3, 64)
		o := strconv.FormatFloat(sp.OwnerMax, 'f', 3, 64)
		if c != tc.coordMax || o != tc.ownerMax {
			t.Errorf("%d servers x %d: busiest/mean %s %s, want %s %s", tc.servers, tc.vnodes, c, o, tc.coordMax, tc.ownerMax)
		}
		if tc.vnodes == 1024 && (sp.CoordinatorMax > 1.10 || sp.OwnerMax > 1.10) {
			t.Errorf("%d servers x 1024: busiest/mean %v %v above 1.10", tc.servers, sp.CoordinatorMax, sp.OwnerMax)
		}
		if sp.CoordinatorMin > 1 || sp.OwnerMin > 1 || sp.CoordinatorMax < 1 || sp.OwnerMax < 1 {
			t.Errorf("%d servers x %d: spread %+v", tc.servers, tc.vnodes, sp)
		}
	}
}

func BenchmarkShares24x1024(b *testing.B) {
	hs := NewWithVirtualNodes(deployment(24), 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		hs.Shares()
	}
}

func BenchmarkNew48x1024(b *testing.B) {
	nodes := deployment(48)
	b.ReportAllocs()
	for b.Loop() {
		NewWithVirtualNodes(nodes, 0, 1024)
	}
}

// TestEditsKeepVirtualNodes: every manager-side edit keeps the count, so a
// finer cluster stays finer through attach, fault, recover and detach.
func TestEditsKeepVirtualNodes(t *testing.T) {
	nodes := deployment(4)
	hs := NewWithVirtualNodes(nodes[:3], 1, 512)
	check := func(name string, x *HashSpace) {
		t.Helper()
		if x.VirtualNodesPerServer() != 512 || len(x.ring) != 512*x.NumNodes() {
			t.Errorf("%s: %d vnodes, ring of %d", name, x.VirtualNodesPerServer(), len(x.ring))
		}
		// The ring is the one New would build for these nodes.
		if y := NewWithVirtualNodes(x.nodes, 0, 512); !sameRing(x, y) {
			t.Errorf("%s: ring differs from a fresh build", name)
		}
	}
	added := hs.WithServerAdded(nodes[3].Addr, 2)
	check("WithServerAdded", added)
	f, _ := added.WithFault(nodes[1].Addr, 3)
	check("WithFault", f)
	r, _ := f.WithRecovered(nodes[1].Addr, 4)
	check("WithRecovered", r)
	d, _ := f.WithoutFaults(5)
	check("WithoutFaults", d)
	w, _ := added.WithoutServer(nodes[0].Addr, 6)
	check("WithoutServer", w)
	check("WithClock", added.WithClock(7))
	check("re-add", f.WithServerAdded(nodes[1].Addr, 8))
}

func sameRing(a, b *HashSpace) bool {
	if len(a.ring) != len(b.ring) {
		return false
	}
	for i := range a.ring {
		if a.ring[i] != b.ring[i] {
			return false
		}
	}
	return true
}

func TestWithVirtualNodes(t *testing.T) {
	hs := goldenSpace(t)
	finer, ok := hs.WithVirtualNodes(1024, 9)
	if !ok || finer.Clock() != 9 || finer.VirtualNodesPerServer() != 1024 || len(finer.ring) != 3*1024 ||
		finer.Equal(hs) || !slicesEqual(finer.Nodes(), hs.Nodes()) || hs.VirtualNodesPerServer() != 128 {
		t.Fatalf("WithVirtualNodes(1024): %v %d", ok, finer.VirtualNodesPerServer())
	}
	if x, ok := finer.WithVirtualNodes(1024, 10); ok || x != finer {
		t.Error("same count changed something")
	}
	back, ok := finer.WithVirtualNodes(DefaultVirtualNodes, 11)
	if !ok || !back.Equal(hs) || !sameRing(back, hs) {
		t.Error("back to 128 is not kumofs's ring")
	}
	// The 1024 chain starts with the 128 of kumofs: each server's first 128
	// points are the same, so finer placement keeps kumofs's points.
	coarse := map[VNode]bool{}
	for _, v := range hs.VirtualNodes() {
		coarse[v] = true
	}
	for _, v := range finer.VirtualNodes() {
		delete(coarse, v)
	}
	if len(coarse) != 0 {
		t.Errorf("%d kumofs points missing from the 1024 ring", len(coarse))
	}
	var nilHS *HashSpace
	if x, ok := nilHS.WithVirtualNodes(64, 1); !ok || x.VirtualNodesPerServer() != 64 || x.NumNodes() != 0 {
		t.Error("nil.WithVirtualNodes")
	}
	// Empty spaces are equal whatever their counts.
	if !NewWithVirtualNodes(nil, 0, 1024).Equal(New(nil, 0)) || !nilHS.Equal(NewWithVirtualNodes(nil, 0, 2)) {
		t.Error("empty spaces differ")
	}
}

func slicesEqual(a, b []Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCheckVirtualNodes(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {-1, false}, {1, true}, {128, true}, {4096, true}, {4097, false}} {
		err := CheckVirtualNodes(tc.n)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadVirtualNodes)) {
			t.Errorf("CheckVirtualNodes(%d) = %v", tc.n, err)
		}
	}
	if err := CheckVirtualNodes(0); err.Error() != "ring: virtual nodes per server out of range: 0 (want 1..4096)" {
		t.Errorf("message %q", err)
	}
	for _, n := range []int{0, 4097} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("NewWithVirtualNodes(%d) did not panic", n)
				}
			}()
			NewWithVirtualNodes(nil, 0, n)
		}()
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("WithVirtualNodes(%d) did not panic", n)
				}
			}()
			goldenSpace(t).WithVirtualNodes(n, 0)
		}()
	}
}

func TestOwnersAllocsFiner(t *testing.T) {
	hs := NewWithVirtualNodes(deployment(48), 0, 1024)
	h := uint64(0)
	var sink int
	n := testing.AllocsPerRun(1000, func() {
		o := hs.Owners(h)
		h += 0x9e3779b97f4a7c15
		if c, ok := o.Coordinator(); ok {
			sink += int(c.Addr.Port())
		}
		sink += o.Len()
	})
	if n != 0 {
		t.Errorf("Owners at 48 x 1024 allocates %v times", n)
	}
}

func BenchmarkOwners48x128(b *testing.B)  { benchOwners(b, 48, 128) }
func BenchmarkOwners48x1024(b *testing.B) { benchOwners(b, 48, 1024) }

func benchOwners(b *testing.B, servers, vnodes int) {
	hs := NewWithVirtualNodes(deployment(servers), 0, vnodes)
	b.ReportAllocs()
	h := uint64(0x9e3779b97f4a7c15)
	for b.Loop() {
		if hs.Owners(h).Len() != 3 {
			b.Fatal("owners")
		}
		h += 0x9e3779b97f4a7c15
	}
}

// TestSwitchCost measures what switching a cluster from 128 to 1024 or 2048
// virtual nodes moves (docs/capacity.md): over the merged points of both rings, the
// fraction of the key space whose coordinator changes, and the fraction of
// the stored copies that must go to a new server. The 1024 ring keeps the 128
// points of each server, but the new points between them take over most
// arcs, so the switch is close to a full reshuffle.
func TestSwitchCost(t *testing.T) {
	for _, tc := range []struct {
		servers, vnodes int
		coord, copies   string
	}{
		{3, 1024, "0.584", "0.000"},
		{6, 1024, "0.734", "0.454"},
		{12, 1024, "0.801", "0.668"},
		{24, 1024, "0.837", "0.768"},
		{48, 1024, "0.854", "0.820"},
		{24, 2048, "0.898", "0.822"},
		{48, 2048, "0.917", "0.878"},
	} {
		a := New(deployment(tc.servers), 0)
		b, _ := a.WithVirtualNodes(tc.vnodes, 0)
		var pts []uint64
		for _, hs := range []*HashSpace{a, b} {
			for _, v := range hs.ring {
				pts = append(pts, v.hash)
			}
		}
		slices.Sort(pts)
		pts = slices.Compact(pts)
		var coord, copies float64
		for i, p := range pts {
			arc := float64(p-pts[(i+len(pts)-1)%len(pts)]) / (1 << 64)
			oa, ob := a.Owners(p), b.Owners(p)
			if oa.Index(0) != ob.Index(0) {
				coord += arc
			}
			kept := 0
			for j := range oa.Len() {
				for k := range ob.Len() {
					if oa.Index(j) == ob.Index(k) {
						kept++
					}
				}
			}
			copies += arc * float64(oa.Len()-kept) / float64(oa.Len())
		}
		c, m := strconv.FormatFloat(coord, 'f', 3, 64), strconv.FormatFloat(copies, 'f', 3, 64)
		t.Logf("%d servers, 128 -> %d: coordinator changes for %s of the keys, %s of the copies move", tc.servers, tc.vnodes, c, m)
		if c != tc.coord || m != tc.copies {
			t.Errorf("%d servers, 128 -> %d: %s %s, want %s %s", tc.servers, tc.vnodes, c, m, tc.coord, tc.copies)
		}
	}
}

func BenchmarkOwners48x2048(b *testing.B) { benchOwners(b, 48, 2048) }

func BenchmarkNew48x128(b *testing.B) {
	nodes := deployment(48)
	b.ReportAllocs()
	for b.Loop() {
		New(nodes, 0)
	}
}

func BenchmarkNew48x2048(b *testing.B) {
	nodes := deployment(48)
	b.ReportAllocs()
	for b.Loop() {
		NewWithVirtualNodes(nodes, 0, 2048)
	}
}
