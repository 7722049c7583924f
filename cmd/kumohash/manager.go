package main

import (
	"context"
	"errors"
	"fmt"

	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// methodGetNodesInfo is the manager's GetNodesInfo (params [], result
// [wseed, [addr_raw...]]).
const methodGetNodesInfo = 99

var errBadReply = errors.New("kumohash: bad GetNodesInfo reply")

// fetchFromManager asks mgr ("host[:19700]") for GetNodesInfo and returns
// its write hash space, each server keeping its active flag.
func fetchFromManager(ctx context.Context, mgr string) (*ring.HashSpace, error) {
	addr, err := ring.ParseAddr(mgr, managerDefaultPort)
	if err != nil {
		return nil, err
	}
	var down rpc.DownCause
	c := rpc.Dial(addr.AddrPort().String(), rpc.Options{
		CallTimeout: managerTimeout,
		DialTimeout: managerTimeout,
		Logf:        func(string, ...any) {}, // the one error line is ours
		OnDown:      down.Set,
	})
	defer c.Close()
	res, err := c.Call(ctx, methodGetNodesInfo, func(b []byte) []byte {
		return msgpack.AppendArrayHeader(b, 0)
	})
	if err != nil {
		var re *rpc.Error
		if errors.As(err, &re) {
			return nil, fmt.Errorf("manager %s: %w", addr, rpc.WrongRole(err, "manager"))
		}
		return nil, fmt.Errorf("cannot reach manager %s: %w", addr, down.Explain(err))
	}
	defer res.Release()
	return parseNodesInfo(res.Bytes())
}

// parseNodesInfo decodes [wseed, newcomers] and builds the ring from wseed.
// The hash space it returns does not refer to b.
func parseNodesInfo(b []byte) (*ring.HashSpace, error) {
	n, b, err := msgpack.ReadArrayHeader(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadReply, err)
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: empty array", errBadReply)
	}
	hs, _, err := ring.ReadSeed(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadReply, err)
	}
	return hs, nil
}
