package ring

import (
	"fmt"
	"sync"

	"kumofs/proto/msgpack"
)

// Node flag bytes of the seed form.
const (
	seedFault  = 0
	seedActive = 1
)

// AppendSeed appends hs in kumofs's seed form, the msgpack array
// [[node_raw, ...], clocktime], where node_raw is a raw of 1 flag byte
// (1 active, 0 fault) followed by the address dump (7 bytes in all for IPv4,
// 23 for IPv6). A hash space whose virtual-node count is not
// DefaultVirtualNodes appends the count as a third element,
// [[node_raw, ...], clocktime, vnodes]; with the default count the seed is
// exactly kumofs's. A nil hs is encoded as an empty hash space at clock 0.
func (hs *HashSpace) AppendSeed(b []byte) []byte {
	vn := hs.VirtualNodesPerServer()
	if vn == DefaultVirtualNodes {
		b = msgpack.AppendArrayHeader(b, 2)
	} else {
		b = msgpack.AppendArrayHeader(b, 3)
	}
	b = msgpack.AppendArrayHeader(b, uint32(hs.NumNodes()))
	var raw [1 + DumpSize6]byte
	for _, n := range hs.nodes0() {
		raw[0] = seedFault
		if n.Active {
			raw[0] = seedActive
		}
		r := n.Addr.AppendDump(raw[:1])
		b = msgpack.AppendRaw(b, r)
	}
	b = msgpack.AppendUint(b, hs.Clock())
	if vn != DefaultVirtualNodes {
		b = msgpack.AppendUint(b, uint64(vn))
	}
	return b
}

func (hs *HashSpace) nodes0() []Node {
	if hs == nil {
		return nil
	}
	return hs.nodes
}

// maxSeedNodes bounds the node count a seed may announce, so that a hostile
// header cannot make ReadSeed allocate much before the data runs out.
const maxSeedNodes = 1 << 16

// maxSeedPoints bounds the ring a seed may ask for (nodes times virtual nodes
// per server), so that a small hostile seed cannot make ReadSeed hash and
// sort for seconds: 2^20 points is 8192 servers at kumofs's 128, 1024 at
// 1024 and 256 at MaxVirtualNodes, and takes about a second to build.
const maxSeedPoints = 1 << 20

func tooManyPoints(nodes, perServer int) bool { return nodes*perServer > maxSeedPoints }

// ReadSeed decodes a seed (see AppendSeed) from the front of b and builds
// its ring. It returns the bytes after the seed. A node_raw of 7 bytes is an
// IPv4 node and one of 23 bytes an IPv6 node; any flag byte other than 0
// means active, as in kumofs. A seed of 2 elements (kumofs's form) has
// DefaultVirtualNodes per server; a third element gives the count, which
// must pass CheckVirtualNodes, and nodes times count must not exceed 2^20.
// Errors wrap ErrBadSeed.
func ReadSeed(b []byte) (*HashSpace, []byte, error) {
	n, b, err := msgpack.ReadArrayHeader(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadSeed, err)
	}
	if n != 2 && n != 3 {
		return nil, nil, fmt.Errorf("%w: array of %d elements, want 2 or 3", ErrBadSeed, n)
	}
	cnt, b, err := msgpack.ReadArrayHeader(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: node list: %w", ErrBadSeed, err)
	}
	if cnt > maxSeedNodes || int(cnt) > len(b) {
		return nil, nil, fmt.Errorf("%w: %d nodes", ErrBadSeed, cnt)
	}
	nodes := make([]Node, 0, cnt)
	for i := uint32(0); i < cnt; i++ {
		var raw []byte
		raw, b, err = msgpack.ReadRaw(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: node %d: %w", ErrBadSeed, i, err)
		}
		if len(raw) != 1+DumpSize4 && len(raw) != 1+DumpSize6 {
			return nil, nil, fmt.Errorf("%w: node %d is %d bytes", ErrBadSeed, i, len(raw))
		}
		addr, err := AddrFromDump(raw[1:])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: node %d: %w", ErrBadSeed, i, err)
		}
		nodes = append(nodes, Node{Addr: addr, Active: raw[0] != seedFault})
	}
	ct, b, err := msgpack.ReadUint(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: clock: %w", ErrBadSeed, err)
	}
	perServer := DefaultVirtualNodes
	if n == 3 {
		var v uint64
		v, b, err = msgpack.ReadUint(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: virtual nodes: %w", ErrBadSeed, err)
		}
		if v < MinVirtualNodes || v > MaxVirtualNodes {
			return nil, nil, fmt.Errorf("%w: %w: %d", ErrBadSeed, ErrBadVirtualNodes, v)
		}
		perServer = int(v)
	}
	if tooManyPoints(len(nodes), perServer) {
		return nil, nil, fmt.Errorf("%w: %d nodes of %d virtual nodes", ErrBadSeed, len(nodes), perServer)
	}
	if r := cachedRing(nodes, perServer); r != nil {
		return &HashSpace{nodes: nodes, clock: ct, vnodes: perServer, ring: r}, b, nil
	}
	hs := newHashSpace(nodes, ct, perServer)
	cacheRing(hs)
	return hs, b, nil
}

// ringCache remembers the last rings ReadSeed built. A ring depends only on
// the addresses, their order and the virtual-node count, and never changes
// once built, so a seed with the same node list (a gateway asks the managers
// for both hash spaces every 2 seconds; flags and clocks change more often
// than membership) shares it instead of hashing and sorting again.
var ringCache struct {
	mu      sync.Mutex   // protects entries
	entries [4]ringEntry // most recently used first
}

type ringEntry struct {
	addrs  []Addr // a private copy
	vnodes int
	ring   []vnode
}

// maxCachedPoints keeps large rings out of the cache, so that it holds at
// most 4 x 2 MiB (2^17 points is 64 servers at 2048).
const maxCachedPoints = 1 << 17

func cachedRing(nodes []Node, perServer int) []vnode {
	ringCache.mu.Lock()
	defer ringCache.mu.Unlock()
	es := &ringCache.entries
	for i := range es {
		e := es[i]
		if e.ring == nil || e.vnodes != perServer || len(e.addrs) != len(nodes) {
			continue
		}
		same := true
		for j := range nodes {
			if e.addrs[j] != nodes[j].Addr {
				same = false
				break
			}
		}
		if same {
			copy(es[1:i+1], es[:i])
			es[0] = e
			return e.ring
		}
	}
	return nil
}

func cacheRing(hs *HashSpace) {
	if len(hs.ring) > maxCachedPoints || len(hs.nodes) == 0 {
		return
	}
	addrs := make([]Addr, len(hs.nodes))
	for i, n := range hs.nodes {
		addrs[i] = n.Addr
	}
	ringCache.mu.Lock()
	defer ringCache.mu.Unlock()
	es := &ringCache.entries
	copy(es[1:], es[:len(es)-1])
	es[0] = ringEntry{addrs: addrs, vnodes: hs.vnodes, ring: hs.ring}
}
