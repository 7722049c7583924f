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
//
// A flush "now" goes out with its flush point decided here, above the
// clock of every active server (flushPoint): a server that takes the
// request late (paused, or its connection slow, and marked fault
// meanwhile) must not hide what was written after the flush_all's OK,
// which its own clock by then would, and then hand its tombstones to the
// others when it is attached again.
func (g *Gateway) doFlushAll(ctx context.Context, delay int64) error {
	var at, fc uint64
	deadline := time.Now().Add(g.cfg.RetryTimeout)
	if delay > 0 {
		at = uint64(time.Now().Unix() + delay)
	} else {
		var err error
		if fc, err = g.flushPoint(ctx, deadline); err != nil {
			return err
		}
	}
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
		errs := inParallel(srv, func(_ int, a ring.Addr) error { return g.flushServer(ctx, a, at, fc, deadline) })
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

// flushPoint returns the flush point of a flush_all "now": one above the
// largest clock of the active servers. Every write acknowledged before the
// flush_all is stored on every active owner of its key, whose clock has
// observed it, so it is below the flush point; the servers advance their
// clocks to it when they flush, so every write after the OK is above it.
// A server that does not answer is asked again until it does, or leaves
// the hash spaces (it holds no acknowledged write the others lack).
func (g *Gateway) flushPoint(ctx context.Context, deadline time.Time) (uint64, error) {
	srv := g.activeServers()
	if len(srv) == 0 {
		return 0, ErrNoServer
	}
	clocks := make([]uint64, len(srv))
	errs := inParallel(srv, func(i int, a ring.Addr) error {
		return g.askServer(ctx, a, wire.SrvGetStatus, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 1)
			return msgpack.AppendUint(b, wire.StatClockTime)
		}, func(res []byte) error {
			v, _, err := msgpack.ReadUint(res)
			if err != nil {
				return ErrBadReply
			}
			clocks[i] = v
			return nil
		}, deadline)
	})
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return slices.Max(clocks) + 1, nil
}

// flushServer sends the flush to server a (see askServer): [at, clock,
// flush point] (the flush point 0 with a delay).
func (g *Gateway) flushServer(ctx context.Context, a ring.Addr, at, fc uint64, deadline time.Time) error {
	return g.askServer(ctx, a, wire.SrvFlush, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendUint(b, at)
		b = msgpack.AppendUint(b, g.clk.Current())
		return msgpack.AppendUint(b, fc)
	}, nil, deadline)
}

// askServer calls method on server a, again after a failure, until it
// succeeds (then it hands the result to read, if not nil), a is no longer
// active in the hash spaces (see doFlushAll: nil), or the deadline passes.
func (g *Gateway) askServer(ctx context.Context, a ring.Addr, method uint32, args func([]byte) []byte,
	read func([]byte) error, deadline time.Time) error {
	for attempt := 0; ; attempt++ {
		c := g.server(a)
		if c == nil {
			return ErrUnavailable
		}
		res, err := c.Call(ctx, method, args)
		if err == nil {
			if read != nil {
				err = read(res.Bytes())
			}
			res.Release()
			return err
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

// inParallel runs f for every server at once and returns their errors, in
// order: a server that cannot be reached must not hold up the others.
func inParallel(srv []ring.Addr, f func(i int, a ring.Addr) error) []error {
	errs := make([]error, len(srv))
	var wg sync.WaitGroup
	for i, a := range srv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, a)
		}()
	}
	wg.Wait()
	return errs
}
