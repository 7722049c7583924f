package server

import (
	"bytes"
	"context"
	"errors"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

// relayTimeout bounds a relayed write: the coordinator's own replication
// (one CallTimeout) and catch-up fit, and the gateway's write timeout is
// longer still.
const relayTimeout = 6 * time.Second

// handleRelay forwards a write ([write_method, hash, [params...]]) to the
// coordinator of hash under our write hash space, for a gateway that
// cannot reach it, and answers with the coordinator's reply.
func (s *Server) handleRelay(req *rpc.Request) {
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil || n != 3 {
		req.ReplyError(errParams)
		return
	}
	method, p, err := msgpack.ReadUint(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	h, p, err := msgpack.ReadUint(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	if _, _, err := msgpack.ReadArrayHeader(p); err != nil {
		req.ReplyError(errParams)
		return
	}
	rest, err := msgpack.Skip(p)
	if err != nil || len(rest) != 0 {
		req.ReplyError(errParams)
		return
	}
	switch method {
	case wire.SrvStore, wire.SrvArith, wire.SrvTouch, wire.SrvRemove, wire.SrvSet, wire.SrvDelete, wire.SrvLease:
	default:
		req.ReplyError(errParams)
		return
	}
	w := s.whs.Load()
	if w.Empty() {
		req.ReplyError(&rpc.Error{Msg: wire.MsgNotReady})
		return
	}
	co, ok := w.Owners(h).Coordinator()
	if !ok || co.Addr == s.cfg.Self {
		// The gateway's hash space is not ours: let it fetch again.
		req.ReplyError(&rpc.Error{Msg: wire.MsgObsolete})
		return
	}
	c := s.peer(co.Addr)
	if c == nil {
		req.ReplyError(&rpc.Error{Msg: wire.MsgNotReady})
		return
	}
	params := bytes.Clone(p)
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, relayTimeout)
		defer cancel()
		res, err := c.Call(ctx, uint32(method), func(b []byte) []byte { return append(b, params...) })
		if err != nil {
			var re *rpc.Error
			switch {
			case errors.As(err, &re) && re.Raw != nil:
				req.ReplyErrorRaw(re.Raw)
			case errors.As(err, &re):
				req.ReplyError(re)
			case errors.Is(err, rpc.ErrPeerDown):
				req.ReplyError(&rpc.Error{Msg: wire.MsgRelayDown})
			default:
				req.ReplyError(&rpc.Error{Msg: wire.MsgRelayLost})
			}
			return
		}
		req.ReplyRaw(res.Bytes())
		res.Release()
	}()
}
