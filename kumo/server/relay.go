package server

import (
	"context"
	"errors"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// handleRelay forwards [target, method, params] to target, a server of the
// current hash spaces (never an arbitrary address), and answers with its
// result or error. It runs off the read goroutine: the forwarded call waits
// for a network round trip.
func (s *Server) handleRelay(req *rpc.Request) {
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil || n < 3 {
		req.ReplyError(errParams)
		return
	}
	raw, p, err := msgpack.ReadRaw(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	target, err := ring.AddrFromDump(raw)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	method, p, err := msgpack.ReadUint(p)
	if err != nil || method == wire.SrvRelay {
		req.ReplyError(errParams)
		return
	}
	rest, err := msgpack.Skip(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	params := p[:len(p)-len(rest)]
	if !s.whs.Load().Contains(target) && !s.rhs.Load().Contains(target) {
		req.ReplyError(&rpc.Error{Msg: "relay: not a server of this cluster"})
		return
	}
	c := s.peer(target)
	if c == nil {
		req.ReplyError(&rpc.Error{Msg: ErrClosed.Error()})
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReplTimeout+s.cfg.CallTimeout)
		defer cancel()
		res, err := c.Call(ctx, uint32(method), func(b []byte) []byte { return append(b, params...) })
		if err != nil {
			var re *rpc.Error
			if errors.As(err, &re) {
				req.ReplyError(re)
			} else {
				s.m.rpcErrs.Count(rpc.ErrorKind(err))
				req.ReplyError(&rpc.Error{Msg: "relay: " + err.Error()})
			}
			return
		}
		req.ReplyRaw(res.Bytes())
		res.Release()
	}()
}
