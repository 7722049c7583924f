package ring

import "slices"

// The manager-side edits below mirror kumofs's HashSpace::add_server,
// fault_server, recover_server, remove_server and remove_fault_servers. Each
// returns a new HashSpace and leaves hs untouched; ct becomes the new
// timestamp. When an edit finds nothing to change it returns hs itself and
// false, and the timestamp stays as it was (as in kumofs).

// WithServerAdded returns hs with addr appended to the node list as active.
// If addr is already in the node list it is marked active instead (what the
// kumofs manager does for a server that comes back: recover, not append), so
// a node list never holds an address twice.
func (hs *HashSpace) WithServerAdded(addr Addr, ct uint64) *HashSpace {
	if i := hs.Index(addr); i >= 0 {
		return hs.withFlag(i, true, ct)
	}
	nodes := append(hs.Nodes(), Node{Addr: addr, Active: true})
	return newHashSpace(nodes, ct, hs.VirtualNodesPerServer())
}

// WithFault returns hs with addr marked fault. The ring does not change:
// fault servers keep their virtual nodes.
func (hs *HashSpace) WithFault(addr Addr, ct uint64) (*HashSpace, bool) {
	i := hs.Index(addr)
	if i < 0 {
		return hs, false
	}
	return hs.withFlag(i, false, ct), true
}

// WithRecovered returns hs with addr marked active again.
func (hs *HashSpace) WithRecovered(addr Addr, ct uint64) (*HashSpace, bool) {
	i := hs.Index(addr)
	if i < 0 {
		return hs, false
	}
	return hs.withFlag(i, true, ct), true
}

// withFlag shares the ring: it depends only on the addresses and their order.
func (hs *HashSpace) withFlag(i int, active bool, ct uint64) *HashSpace {
	nodes := hs.Nodes()
	nodes[i].Active = active
	return &HashSpace{nodes: nodes, clock: ct, vnodes: hs.vnodes, ring: hs.ring}
}

// WithoutServer returns hs without addr, with the ring rebuilt.
func (hs *HashSpace) WithoutServer(addr Addr, ct uint64) (*HashSpace, bool) {
	i := hs.Index(addr)
	if i < 0 {
		return hs, false
	}
	nodes := slices.Delete(hs.Nodes(), i, i+1)
	return newHashSpace(nodes, ct, hs.vnodes), true
}

// WithoutFaults returns hs without its fault servers, with the ring rebuilt
// (kumoctl detach).
func (hs *HashSpace) WithoutFaults(ct uint64) (*HashSpace, bool) {
	nodes := slices.DeleteFunc(hs.Nodes(), func(n Node) bool { return !n.Active })
	if len(nodes) == hs.NumNodes() {
		return hs, false
	}
	return newHashSpace(nodes, ct, hs.vnodes), true
}

// WithClock returns hs with the timestamp ct and nothing else changed.
func (hs *HashSpace) WithClock(ct uint64) *HashSpace {
	if hs == nil {
		// A nil space is an empty kumofs-compatible one.
		return New(nil, ct)
	}
	c := *hs
	c.clock = ct
	return &c
}

// WithVirtualNodes returns hs with vnodes virtual nodes per server and the
// ring rebuilt: the operator's switch between kumofs placement
// (DefaultVirtualNodes) and a finer one. Like adding or removing a server it
// moves keys, so it is followed by a rebalance. If hs already has that count
// it returns hs and false. It panics if vnodes fails CheckVirtualNodes.
func (hs *HashSpace) WithVirtualNodes(vnodes int, ct uint64) (*HashSpace, bool) {
	if vnodes == hs.VirtualNodesPerServer() {
		if err := CheckVirtualNodes(vnodes); err != nil {
			panic(err)
		}
		return hs, false
	}
	return newHashSpace(hs.Nodes(), ct, vnodes), true
}
