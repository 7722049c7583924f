package ring

import "math/bits"

// Share is one server's part of the key space: the fraction of the 2^64
// hashes for which it is the coordinator (the first owner) and for which it
// is any of the Replicas owners. Over all servers the Coordinator shares sum
// to 1 and the Owner shares to min(Replicas, servers).
//
// Shares are placement only: active flags are ignored, so a fault server
// keeps the share it will have again once it recovers.
type Share struct {
	Node        Node
	Coordinator float64
	Owner       float64
}

// Shares returns every server's share, in node-list order, computed exactly
// from the ring's arcs (not by sampling keys): the hashes h with
// lower-bound(h) = i are the arc (ring[i-1], ring[i]], wrapping around for
// i = 0, and all of them have the owners of ring point i. The per-server sums
// are kept in 128-bit integers and converted to fractions at the end, so the
// only rounding is that of one float64 division.
func (hs *HashSpace) Shares() []Share {
	if hs.NumNodes() == 0 {
		return nil
	}
	coord := make([]u128, len(hs.nodes))
	owner := make([]u128, len(hs.nodes))
	r := hs.ring
	for i := range r {
		var arc u128
		if i > 0 {
			arc.lo = r[i].hash - r[i-1].hash
		} else {
			// (ring[n-1], 2^64) and [0, ring[0]]: 2^64 + ring[0] - ring[n-1].
			arc.lo = r[0].hash - r[len(r)-1].hash
			if arc.lo == 0 {
				arc.hi = 1 // one point (or all tied): the whole ring
			}
		}
		if arc.lo == 0 && arc.hi == 0 {
			continue // a later point of a tie owns nothing
		}
		o := hs.ownersFrom(i)
		coord[o.idx[0]].add(arc)
		for _, n := range o.idx[:o.n] {
			owner[n].add(arc)
		}
	}
	out := make([]Share, len(hs.nodes))
	for i, n := range hs.nodes {
		out[i] = Share{Node: n, Coordinator: coord[i].fraction(), Owner: owner[i].fraction()}
	}
	return out
}

// u128 counts hashes; a server can own all 2^64 of them.
type u128 struct{ hi, lo uint64 }

func (a *u128) add(b u128) {
	var carry uint64
	a.lo, carry = bits.Add64(a.lo, b.lo, 0)
	a.hi += b.hi + carry
}

// fraction returns a / 2^64.
func (a u128) fraction() float64 {
	return float64(a.hi) + float64(a.lo)/(1<<64)
}

// Spread summarizes shares: the busiest and the least loaded server's share
// divided by the mean share, as coordinator and as any owner. A perfectly
// even placement has all four equal to 1. Empty shares give zeros.
type Spread struct {
	CoordinatorMax, CoordinatorMin float64
	OwnerMax, OwnerMin             float64
}

// SpreadOf returns the Spread of shares (as returned by Shares).
func SpreadOf(shares []Share) Spread {
	if len(shares) == 0 {
		return Spread{}
	}
	n := float64(len(shares))
	coordMean := 1 / n
	ownerMean := float64(min(Replicas, len(shares))) / n
	s := Spread{
		CoordinatorMax: shares[0].Coordinator, CoordinatorMin: shares[0].Coordinator,
		OwnerMax: shares[0].Owner, OwnerMin: shares[0].Owner,
	}
	for _, x := range shares[1:] {
		s.CoordinatorMax = max(s.CoordinatorMax, x.Coordinator)
		s.CoordinatorMin = min(s.CoordinatorMin, x.Coordinator)
		s.OwnerMax = max(s.OwnerMax, x.Owner)
		s.OwnerMin = min(s.OwnerMin, x.Owner)
	}
	s.CoordinatorMax /= coordMean
	s.CoordinatorMin /= coordMean
	s.OwnerMax /= ownerMean
	s.OwnerMin /= ownerMean
	return s
}
