// Package ring is kumo's hash space: the consistent-hash ring that places
// every key on 3 servers, exactly as kumofs 0.4.13 does, so that a key has
// the same owners in both systems.
//
// A key's hash is the first 8 bytes of its SHA-1 read little-endian (Hash).
// Each server contributes 128 chained virtual nodes: x0 = hash(address dump),
// x_i = hash(LE64 bytes of x_{i-1}). The count is a property of the hash
// space: NewWithVirtualNodes and WithVirtualNodes choose a finer placement
// (more virtual nodes per server, see Shares), the seed carries the count to
// every node, and a space with the kumofs count of 128 is byte-identical to
// kumofs's. The ring is every virtual node, stable
// sorted by hash, so ties keep node-list order. A key's owners are found by
// a lower-bound search with wrap-around and a clockwise walk that collects
// the first 3 distinct servers; fault servers are not skipped (callers ignore
// inactive owners). The coordinator of a key is its first active owner.
//
// A HashSpace (node list with active flags, a ClockTime timestamp and the
// ring) is immutable once built: the manager-side edits (WithServerAdded,
// WithFault, ...) return a new one, and readers hold it through an atomic
// pointer and replace it as a whole. All methods are safe for concurrent use.
package ring

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Errors returned by this package.
var (
	// ErrBadAddr reports an address that cannot be parsed or resolved.
	ErrBadAddr = errors.New("ring: bad address")
	// ErrBadSeed reports a malformed hash-space seed.
	ErrBadSeed = errors.New("ring: bad hash space seed")
	// ErrBadVirtualNodes reports a virtual-node count outside
	// MinVirtualNodes..MaxVirtualNodes.
	ErrBadVirtualNodes = errors.New("ring: virtual nodes per server out of range")
)

// Replicas is the number of distinct servers that own each key (kumofs:
// coordinator plus NUM_REPLICATION = 2).
const Replicas = 3

// Virtual nodes per server.
const (
	// DefaultVirtualNodes is the number of virtual nodes per server in
	// kumofs; hash spaces with this count are kumofs-compatible.
	DefaultVirtualNodes = 128
	// MinVirtualNodes and MaxVirtualNodes bound the count a hash space (and
	// so a seed from the network) may have.
	MinVirtualNodes = 1
	MaxVirtualNodes = 4096
)

// CheckVirtualNodes returns nil if n is a valid virtual-node count, and an
// error wrapping ErrBadVirtualNodes otherwise (for validating a flag).
func CheckVirtualNodes(n int) error {
	if n < MinVirtualNodes || n > MaxVirtualNodes {
		return fmt.Errorf("%w: %d (want %d..%d)", ErrBadVirtualNodes, n, MinVirtualNodes, MaxVirtualNodes)
	}
	return nil
}

// Hash returns the kumofs hash of key: LE64(SHA1(key)[0:8]). It does not
// allocate.
func Hash(key []byte) uint64 {
	sum := sha1.Sum(key)
	return binary.LittleEndian.Uint64(sum[:8])
}

// Node is a server in a hash space's node list.
type Node struct {
	Addr   Addr
	Active bool // false: the server is marked fault
}

// VNode is one virtual node of the ring.
type VNode struct {
	Hash uint64
	Node Node
}

// vnode is a ring point; node indexes the hash space's node list.
type vnode struct {
	hash uint64
	node int32
}

// HashSpace is an immutable hash space: node list, timestamp and ring.
// The zero value is not usable; use New or ReadSeed. A nil *HashSpace
// behaves as an empty one in the read methods.
type HashSpace struct {
	nodes  []Node
	clock  uint64
	vnodes int     // virtual nodes per server
	ring   []vnode // sorted by hash, stable in node-list order
}

// New builds a kumofs-compatible hash space (DefaultVirtualNodes per server)
// from nodes (in node-list order; the slice is copied) and the timestamp
// clock.
func New(nodes []Node, clock uint64) *HashSpace {
	return newHashSpace(slices.Clone(nodes), clock, DefaultVirtualNodes)
}

// NewWithVirtualNodes is New with vnodes virtual nodes per server. With
// DefaultVirtualNodes it is New; any other count gives a finer (or coarser)
// placement that kumofs nodes do not understand. It panics if vnodes fails
// CheckVirtualNodes (validate operator input first).
func NewWithVirtualNodes(nodes []Node, clock uint64, vnodes int) *HashSpace {
	return newHashSpace(slices.Clone(nodes), clock, vnodes)
}

// newHashSpace takes ownership of nodes.
func newHashSpace(nodes []Node, clock uint64, perServer int) *HashSpace {
	if err := CheckVirtualNodes(perServer); err != nil {
		panic(err)
	}
	hs := &HashSpace{nodes: nodes, clock: clock, vnodes: perServer}
	hs.ring = buildRing(nodes, perServer)
	return hs
}

func buildRing(nodes []Node, perServer int) []vnode {
	r := make([]vnode, 0, len(nodes)*perServer)
	var dump [DumpSize6]byte
	var le [8]byte
	for i, n := range nodes {
		x := Hash(n.Addr.AppendDump(dump[:0]))
		r = append(r, vnode{x, int32(i)})
		for j := 1; j < perServer; j++ {
			binary.LittleEndian.PutUint64(le[:], x)
			x = Hash(le[:])
			r = append(r, vnode{x, int32(i)})
		}
	}
	// Stable by hash is the same as sorted by (hash, node): r is in node
	// order, and points equal in both are interchangeable.
	slices.SortFunc(r, func(a, b vnode) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.node) - int(b.node)
	})
	return r
}

// Nodes returns a copy of the node list, in attach order.
func (hs *HashSpace) Nodes() []Node {
	if hs == nil {
		return nil
	}
	return slices.Clone(hs.nodes)
}

// NumNodes returns the number of servers in the node list.
func (hs *HashSpace) NumNodes() int {
	if hs == nil {
		return 0
	}
	return len(hs.nodes)
}

// Node returns the i'th server of the node list.
func (hs *HashSpace) Node(i int) Node { return hs.nodes[i] }

// Clock returns the hash space's timestamp (a ClockTime).
func (hs *HashSpace) Clock() uint64 {
	if hs == nil {
		return 0
	}
	return hs.clock
}

// VirtualNodesPerServer returns the number of virtual nodes each server has.
func (hs *HashSpace) VirtualNodesPerServer() int {
	if hs == nil {
		return DefaultVirtualNodes
	}
	return hs.vnodes
}

// Empty reports whether no server is active (kumofs HashSpace::empty).
func (hs *HashSpace) Empty() bool {
	if hs == nil {
		return true
	}
	for _, n := range hs.nodes {
		if n.Active {
			return false
		}
	}
	return true
}

// Index returns the position of addr in the node list, or -1.
func (hs *HashSpace) Index(addr Addr) int {
	if hs == nil {
		return -1
	}
	for i := range hs.nodes {
		if hs.nodes[i].Addr == addr {
			return i
		}
	}
	return -1
}

// Contains reports whether addr is in the node list (active or fault).
func (hs *HashSpace) Contains(addr Addr) bool { return hs.Index(addr) >= 0 }

// IsActive reports whether addr is in the node list and active.
func (hs *HashSpace) IsActive(addr Addr) bool {
	i := hs.Index(addr)
	return i >= 0 && hs.nodes[i].Active
}

// Equal reports whether hs and o have the same node list (addresses and
// flags, in order) and the same virtual-node count; the timestamp is ignored,
// as in kumofs's HashSpace::operator==. Two spaces without nodes are equal
// whatever their counts: both place nothing.
func (hs *HashSpace) Equal(o *HashSpace) bool {
	if hs.NumNodes() == 0 || o.NumNodes() == 0 {
		return hs.NumNodes() == 0 && o.NumNodes() == 0
	}
	return hs.vnodes == o.vnodes && slices.Equal(hs.nodes, o.nodes)
}

// VirtualNodes returns the ring in order (a fresh slice), for kumohash dump.
func (hs *HashSpace) VirtualNodes() []VNode {
	if hs == nil {
		return nil
	}
	out := make([]VNode, len(hs.ring))
	for i, v := range hs.ring {
		out[i] = VNode{Hash: v.hash, Node: hs.nodes[v.node]}
	}
	return out
}

// Owners returns the first Replicas distinct servers clockwise from h,
// fault servers included. It does not allocate.
func (hs *HashSpace) Owners(h uint64) Owners {
	o := Owners{hs: hs}
	if hs == nil || len(hs.ring) == 0 {
		return o
	}
	r := hs.ring
	// lower_bound: first i with r[i].hash >= h
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].hash < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r) {
		lo = 0
	}
	return hs.ownersFrom(lo)
}

// ownersFrom walks the ring clockwise from index lo (hs has a ring).
func (hs *HashSpace) ownersFrom(lo int) Owners {
	o := Owners{hs: hs}
	r := hs.ring
	want := min(Replicas, len(hs.nodes))
	for i, j := lo, 0; j < len(r); j++ {
		n := r[i].node
		if !o.has(n) {
			o.idx[o.n] = n
			o.n++
			if int(o.n) == want {
				break
			}
		}
		if i++; i == len(r) {
			i = 0
		}
	}
	return o
}

// Lookup returns the owners of key: Owners(Hash(key)).
func (hs *HashSpace) Lookup(key []byte) Owners { return hs.Owners(Hash(key)) }

// Owners is the owner list of a hash: up to 3 distinct servers in ring
// order, fault servers included. It is a small value that refers to its
// HashSpace.
type Owners struct {
	hs  *HashSpace
	idx [Replicas]int32
	n   uint8
}

func (o *Owners) has(node int32) bool {
	for _, x := range o.idx[:o.n] {
		if x == node {
			return true
		}
	}
	return false
}

// Len returns the number of owners (fewer than 3 when the ring has fewer
// servers).
func (o Owners) Len() int { return int(o.n) }

// At returns the i'th owner (0 is the primary).
func (o Owners) At(i int) Node {
	if i < 0 || i >= int(o.n) {
		panic("ring: Owners index out of range")
	}
	return o.hs.nodes[o.idx[i]]
}

// Index returns the node-list index of the i'th owner.
func (o Owners) Index(i int) int {
	if i < 0 || i >= int(o.n) {
		panic("ring: Owners index out of range")
	}
	return int(o.idx[i])
}

// Coordinator returns the first active owner; ok is false when none of the
// owners is active.
func (o Owners) Coordinator() (n Node, ok bool) {
	for _, i := range o.idx[:o.n] {
		if nd := o.hs.nodes[i]; nd.Active {
			return nd, true
		}
	}
	return Node{}, false
}

// IsCoordinator reports whether addr is the first active owner. As in
// kumofs's check_coordinator_assign, callers decide what to do when no owner
// is active (Coordinator's ok is false).
func (o Owners) IsCoordinator(addr Addr) bool {
	n, ok := o.Coordinator()
	return ok && n.Addr == addr
}

// Contains reports whether addr is one of the owners, active or not.
func (o Owners) Contains(addr Addr) bool {
	for _, i := range o.idx[:o.n] {
		if o.hs.nodes[i].Addr == addr {
			return true
		}
	}
	return false
}

// ContainsActive reports whether addr is an active owner (a replicator).
func (o Owners) ContainsActive(addr Addr) bool {
	for _, i := range o.idx[:o.n] {
		if n := o.hs.nodes[i]; n.Addr == addr && n.Active {
			return true
		}
	}
	return false
}

// ActiveLen returns the number of active owners.
func (o Owners) ActiveLen() int {
	c := 0
	for _, i := range o.idx[:o.n] {
		if o.hs.nodes[i].Active {
			c++
		}
	}
	return c
}
