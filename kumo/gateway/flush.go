package gateway

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// activeServers lists the active servers of both hash spaces.
func (g *Gateway) activeServers() []ring.Addr {
	seen := map[ring.Addr]bool{}
	var out []ring.Addr
	for _, hs := range []*ring.HashSpace{g.whs.Load(), g.rhs.Load()} {
		for _, n := range hs.Nodes() {
			if n.Active && !seen[n.Addr] {
				seen[n.Addr] = true
				out = append(out, n.Addr)
			}
		}
	}
	return out
}

// doFlushAll is the body of FlushAll: every active server tombstones what
// it holds at the flush point.
//
// A server attached while the flush goes out may hold a rebalance copy
// made before its sources flushed, and the gateway may not list it yet:
// so once every server it knows has flushed, the gateway asks a manager
// for the current hash spaces and flushes the servers that appeared, until
// none does. A server attached after that refetch got its copy from
// sources that had flushed. A server that fails the flush and then leaves
// the hash space (SIGKILLed, marked fault by the managers) counts as
// flushed: it serves again only once attached, and the replace that
// attaches it copies the other owners' tombstones over its old values.
func (g *Gateway) doFlushAll(ctx context.Context, delay int64) error {
	var at uint64
	if delay > 0 {
		at = uint64(time.Now().Unix() + delay)
	}
	deadline := time.Now().Add(g.cfg.RetryTimeout)
	flushed := map[ring.Addr]bool{}
	for round := 0; round < maxFlushRounds; round++ {
		var srv []ring.Addr
		for _, a := range g.activeServers() {
			if !flushed[a] {
				srv = append(srv, a)
			}
		}
		if len(srv) == 0 {
			if round == 0 {
				return ErrNoServer
			}
			return nil
		}
		// Every server is asked, at once, also when one fails: a server
		// that cannot be reached must not leave the ones after it
		// unflushed.
		errs := make([]error, len(srv))
		var wg sync.WaitGroup
		for i, a := range srv {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = g.flushServer(ctx, a, at, deadline)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return err
			}
			flushed[srv[i]] = true
		}
		for _, m := range g.mgrs {
			if g.fetch(m) {
				break
			}
		}
	}
	return errors.New("gateway: flush_all: the servers kept changing")
}

// maxFlushRounds bounds doFlushAll's rounds of newly attached servers.
const maxFlushRounds = 8

// flushServer sends the flush to server a, again after a failure, until it
// succeeds, a is no longer active in the hash spaces (see doFlushAll), or
// the deadline passes.
func (g *Gateway) flushServer(ctx context.Context, a ring.Addr, at uint64, deadline time.Time) error {
	for attempt := 0; ; attempt++ {
		c := g.server(a)
		if c == nil {
			return ErrUnavailable
		}
		res, err := c.Call(ctx, wire.SrvFlush, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 1)
			return msgpack.AppendUint(b, at)
		})
		if err == nil {
			res.Release()
			return nil
		}
		g.m.rpcErrs.Count(rpc.ErrorKind(err))
		if !retryable(err) {
			return err
		}
		g.requestRefresh()
		if !g.backoff(ctx, attempt, deadline) {
			return err
		}
		if !slices.Contains(g.activeServers(), a) {
			g.log.Debugf("flush: %s left the hash space after %v", a, err)
			return nil
		}
	}
}
