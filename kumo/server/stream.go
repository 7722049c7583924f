package server

import (
	"context"
	"net"
	"strconv"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// The replace stream: rebalancing moves records in ReplicateBatch calls on
// a separate connection to the receiver's stream port (-L, bound on the -l
// address as in kumofs), so that megabyte batches never queue in front of
// the small, latency-sensitive requests on the main connection. A peer
// without a stream port is sent the batches on its main connection.

// serveStream serves the replace stream on ln, the stream port (New
// listens on it before it opens the store).
func (s *Server) serveStream(ln net.Listener) {
	s.streamLn = ln
	s.streamSrv = &rpc.Server{
		Handler: rpc.HandlerFunc(func(req *rpc.Request) {
			if req.Method != wire.SrvReplicateBatch {
				req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "the stream port only takes ReplicateBatch"})
				return
			}
			s.handleReplicate(req)
		}),
		OnHello: s.onHello,
		Logf:    s.rpcSrv.Logf,
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		if err := s.streamSrv.Serve(ln); err != nil && !s.closed.Load() {
			s.log.Errorf("stream server stopped: %v", err)
		}
	}()
}

// streamPort answers GetStatus StatStreamPort.
func (s *Server) streamPort() uint64 {
	if s.streamLn == nil {
		return 0
	}
	return uint64(s.streamLn.Addr().(*net.TCPAddr).Port)
}

// stream returns the client for a peer's stream port, asking the peer for
// it on first use (until deadline at the latest: a peer that does not
// answer must not hold a batch past its own deadline); it falls back to
// the main connection.
func (s *Server) stream(a ring.Addr, deadline time.Time) *rpc.Client {
	s.streamMu.Lock()
	c, ok := s.streams[a]
	s.streamMu.Unlock()
	if ok {
		return c
	}
	main := s.peer(a)
	if main == nil {
		return nil
	}
	port := uint64(0)
	ctx, cancel := context.WithDeadline(s.ctx, earliest(time.Now().Add(s.cfg.CallTimeout), deadline))
	res, err := main.Call(ctx, wire.SrvGetStatus, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendUint(b, wire.StatStreamPort)
	})
	cancel()
	if err != nil {
		return main // not reachable now: the caller retries
	}
	port, _, _ = msgpack.ReadUint(res.Bytes())
	res.Release()
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams == nil {
		return nil
	}
	if c, ok := s.streams[a]; ok {
		return c
	}
	if port == 0 || port > 65535 {
		s.streams[a] = main
		return main
	}
	c = rpc.Dial(net.JoinHostPort(a.IP().String(), strconv.FormatUint(port, 10)), rpc.Options{
		Hello:       &rpc.Hello{Addr: s.cfg.Self.Dump(), Role: wire.RoleServer},
		CallTimeout: 10 * time.Second,
		Logf:        s.log.Func(logging.Debug),
	})
	s.streams[a] = c
	return c
}
