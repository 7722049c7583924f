package gateway

// nextReqID returns a request id for a write that must not be applied
// twice (incr, decr, append, prepend). The coordinator and the replicas
// remember recent ids with their outcome, so a write whose answer was lost
// can be sent again, also to the next coordinator, and is answered with
// its first outcome instead of being applied again. Ids are a random
// per-gateway base plus a counter: unique among gateways with overwhelming
// probability, never 0 (no id).
func (g *Gateway) nextReqID() uint64 {
	for {
		if id := g.reqBase + g.reqSeq.Add(1); id != 0 {
			return id
		}
	}
}
