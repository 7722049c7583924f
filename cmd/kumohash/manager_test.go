package main

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"

	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// nodesInfo encodes a GetNodesInfo result: [wseed, [newcomer_raw...]].
func nodesInfo(hs *ring.HashSpace, newcomers ...ring.Addr) []byte {
	b := msgpack.AppendArrayHeader(nil, 2)
	b = hs.AppendSeed(b)
	b = msgpack.AppendArrayHeader(b, uint32(len(newcomers)))
	for _, a := range newcomers {
		b = msgpack.AppendRaw(b, a.Dump())
	}
	return b
}

// startManager serves GetNodesInfo with result (or rerr) on 127.0.0.1 and
// returns its address.
func startManager(t *testing.T, result []byte, rerr *rpc.Error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &rpc.Server{Handler: rpc.HandlerFunc(func(req *rpc.Request) {
		switch {
		case req.Method != methodGetNodesInfo || !bytes.Equal(req.Params, []byte{0x90}):
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol})
		case rerr != nil:
			req.ReplyError(rerr)
		default:
			req.Reply(func(b []byte) []byte { return append(b, result...) })
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestManagerForm(t *testing.T) {
	newcomer, _ := ring.ParseAddr("127.0.0.1:19804", 0)
	addr := startManager(t, nodesInfo(managerSpace(t), newcomer), nil)
	for _, tc := range []struct {
		args   []string
		golden string
	}{
		{[]string{"-m", addr, "assign", "a", "k1", "foo"}, "assign_manager_fault.golden"},
		{[]string{"-m", addr, "dump"}, "dump_manager.golden"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr, fetchFromManager); code != 0 || stderr.Len() != 0 {
			t.Fatalf("%q: exit %d, stderr %q", tc.args, code, stderr.String())
		}
		golden(t, tc.golden, stdout.Bytes())
	}
}

func TestManagerFormErrors(t *testing.T) {
	// A port nothing listens on: take one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name string
		mgr  string
		want string
	}{
		{"refused", closed, "error: cannot reach manager " + closed + ": dial tcp " + closed + ": connect: connection refused"},
		{"rpc error", startManager(t, nil, &rpc.Error{Msg: "not ready"}), "error: manager "},
		{"bad reply", startManager(t, []byte{0x91, 0x00}, nil), "error: kumohash: bad GetNodesInfo reply: ring: bad hash space seed"},
		{"bad address", "127.0.0.1:x", "error: ring: bad address"},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"-m", tc.mgr, "dump"}, &stdout, &stderr, fetchFromManager)
		if code != 1 || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), tc.want) ||
			strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s: exit %d stdout %q stderr %q", tc.name, code, stdout.String(), stderr.String())
		}
	}
}

func TestParseNodesInfo(t *testing.T) {
	newcomer, _ := ring.ParseAddr("127.0.0.1:19804", 0)
	full := nodesInfo(managerSpace(t), newcomer)
	hs, err := parseNodesInfo(full)
	if err != nil || !hs.Equal(managerSpace(t)) || hs.Clock() != 4 {
		t.Fatalf("parseNodesInfo: %v", err)
	}
	// Fed one byte at a time: every prefix that cuts the seed is short input.
	seedEnd := len(full) - len(newcomer.Dump()) - 2
	for n := 0; n < seedEnd; n++ {
		if _, err := parseNodesInfo(full[:n]); !errors.Is(err, msgpack.ErrShort) || !errors.Is(err, errBadReply) {
			t.Fatalf("prefix %d: %v", n, err)
		}
	}
	// A finer hash space carries its count; its prefixes are short input too.
	finer, _ := managerSpace(t).WithVirtualNodes(1024, 4)
	full = nodesInfo(finer)
	hs, err = parseNodesInfo(full)
	if err != nil || !hs.Equal(finer) || hs.VirtualNodesPerServer() != 1024 {
		t.Fatalf("parseNodesInfo of a 1024 space: %v", err)
	}
	for n := 0; n < len(full)-1; n++ {
		if _, err := parseNodesInfo(full[:n]); !errors.Is(err, msgpack.ErrShort) || !errors.Is(err, errBadReply) {
			t.Fatalf("1024 prefix %d: %v", n, err)
		}
	}
	for _, b := range [][]byte{{0x90}, {0x00}, {0x92, 0xc0}} {
		if _, err := parseNodesInfo(b); !errors.Is(err, errBadReply) {
			t.Errorf("%x: %v", b, err)
		}
	}
}

func FuzzParseNodesInfo(f *testing.F) {
	a, _ := ring.ParseAddr("127.0.0.1:19801", 0)
	f.Add(nodesInfo(ring.New([]ring.Node{{Addr: a, Active: true}}, 1<<32|4), a))
	f.Add(nodesInfo(ring.New(nil, 0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := parseNodesInfo(b)
		if err != nil {
			if !errors.Is(err, errBadReply) {
				t.Fatalf("error %v does not wrap errBadReply", err)
			}
			return
		}
		for _, v := range hs.VirtualNodes() {
			o := hs.Owners(v.Hash)
			if o.Len() == 0 || o.At(0).Addr != v.Node.Addr {
				t.Fatalf("owner of a virtual node's own hash is not that node")
			}
			break
		}
	})
}
