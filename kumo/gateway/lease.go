package gateway

import (
	"context"
	"errors"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

var _ memcache.LeaseBackend = (*Gateway)(nil)

// Win implements memcache.LeaseBackend: the key's coordinator marks the
// version whose CAS unique is cas as having its win token out, re-stamped
// (a new clock, which orders the replicas) but keeping its CAS unique, as
// memcached does, and replicated like any write; the CAS unique is
// returned.
// It carries a request id, so an attempt whose answer was lost is sent
// again and answered with the first outcome: the token is not lost to a
// retry that would find it out. A claim that lost is a
// *memcache.LeaseLostError when the server says what it lost to.
func (g *Gateway) Win(ctx context.Context, key []byte, cas uint64) (uint64, error) {
	start := time.Now()
	ct, _, err := g.lease(ctx, key, wire.LeaseWin, cas, false, 0)
	g.observe(cmdTouch, start, err)
	return ct, err
}

// Invalidate implements memcache.LeaseBackend (md I) on the key's
// coordinator.
func (g *Gateway) Invalidate(ctx context.Context, key []byte, cas uint64, touch bool, exptime int64) error {
	start := time.Now()
	_, _, err := g.lease(ctx, key, wire.LeaseInvalidate, cas, touch, exptime)
	g.observe(cmdDelete, start, err)
	return err
}

// lease sends SrvLease to key's coordinator, with a request id (retried
// after an attempt that may have been applied, see arith), and returns the
// new clock.
func (g *Gateway) lease(ctx context.Context, key []byte, op uint64, cas uint64, touch bool, exptime int64) (uint64, bool, error) {
	var kb [maxKey]byte
	dbkey, h := g.dbKey(kb[:0], key)
	var ct uint64
	id := g.nextReqID()
	ambiguous, err := g.write(ctx, h, wire.SrvLease, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 6)
		b = msgpack.AppendRaw(b, dbkey)
		b = msgpack.AppendUint(b, op)
		b = msgpack.AppendUint(b, cas)
		b = msgpack.AppendBool(b, touch)
		b = msgpack.AppendUint(b, uint64(exptime32(exptime)))
		return msgpack.AppendUint(b, id)
	}, func(res []byte) error {
		st, p, err := statusResult(res)
		if err != nil {
			return err
		}
		switch st {
		case wire.StatusOK:
			ct, _, _ = msgpack.ReadUint(p)
		case wire.StatusExists:
			// The version the lease lost to, from servers that say.
			cur, p, err := msgpack.ReadUint(p)
			if err != nil {
				break
			}
			if tok, _, err := msgpack.ReadBool(p); err == nil && cur != 0 {
				return &memcache.LeaseLostError{CAS: cur, TokenSent: tok}
			}
		}
		return statusError(st)
	})
	return ct, ambiguous, err
}

var _ memcache.AccessBackend = (*Gateway)(nil)

// GetAccess implements memcache.AccessBackend through SrvGetAccess, which
// the server that answers the read keeps in memory (approximate: see
// wire.SrvGetAccess). An embedded gateway asks its own server through
// RPC too. A server older than the method answers CodeProtocol; the item
// is then read as by Get and reported as never read before.
func (g *Gateway) GetAccess(ctx context.Context, key []byte, bump bool, dst []byte, it *memcache.Item) (bool, int64, error) {
	start := time.Now()
	var kb [maxKey]byte
	dbkey, h := g.dbKey(kb[:0], key)
	var fetched bool
	var last uint64
	err := g.read(ctx, h, wire.SrvGetAccess, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 2)
		b = msgpack.AppendRaw(b, dbkey)
		return msgpack.AppendBool(b, bump)
	}, func(res []byte) error {
		n, p, err := msgpack.ReadArrayHeader(res)
		if err != nil || n < 3 {
			return ErrBadReply
		}
		val := p
		if p, err = msgpack.Skip(p); err != nil {
			return ErrBadReply
		}
		if fetched, p, err = msgpack.ReadBool(p); err != nil {
			return ErrBadReply
		}
		if last, _, err = msgpack.ReadUint(p); err != nil {
			return ErrBadReply
		}
		if err := getResult(val, it); err != nil {
			return err
		}
		it.Value = append(dst[:0], it.Value...) // res is reused after the call
		return nil
	})
	var re *rpc.Error
	if errors.As(err, &re) && re.Code == rpc.CodeProtocol {
		err = g.doGet(ctx, key, dst, it)
		fetched, last = false, 0
	}
	g.observe(cmdGet, start, err)
	return fetched, int64(last), err
}
