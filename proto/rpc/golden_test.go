package rpc

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"kumofs/proto/msgpack"
)

var update = flag.Bool("update", false, "rewrite testdata/frames.golden")

// Values from the kumofs catalogue (kumofs-design.md §3.2, §3.4, §4.3).
var (
	// addr6 is kumofs's address dump: port (BE16) then IPv4.
	addr1 = []byte{0x4d, 0x58, 127, 0, 0, 1} // 127.0.0.1:19800
	addr2 = []byte{0x4d, 0x58, 127, 0, 0, 2} // 127.0.0.2:19800
	addr3 = []byte{0x4d, 0x58, 127, 0, 0, 3} // 127.0.0.3:19800

	seedTime  = uint64(1700000000)<<32 | 7 // ClockTime = unix seconds << 32 | clock
	valueTime = uint64(1700000001)<<32 | 9
	keyHash   = uint64(0x0123456789abcdef)
)

// appendSeed appends HSSeed [[node_raw7...], clocktime]; node_raw7 is the
// active flag byte then the address dump.
func appendSeed(b []byte, ts uint64, nodes ...[]byte) []byte {
	b = msgpack.AppendArrayHeader(b, 2)
	b = msgpack.AppendArrayHeader(b, uint32(len(nodes)))
	for i, n := range nodes {
		active := byte(1)
		if i == 1 {
			active = 0 // the second node is fault
		}
		b = msgpack.AppendRaw(b, append([]byte{active}, n...))
	}
	return msgpack.AppendUint(b, ts)
}

// appendDBKey appends raw(BE64(hash) ‖ key).
func appendDBKey(b []byte, key string) []byte {
	b = msgpack.AppendRawHeader(b, uint32(8+len(key)))
	b = binary.BigEndian.AppendUint64(b, keyHash)
	return append(b, key...)
}

// appendDBValue appends raw(BE64(clocktime) ‖ meta(2) ‖ data).
func appendDBValue(b []byte, data string) []byte {
	b = msgpack.AppendRawHeader(b, uint32(10+len(data)))
	b = binary.BigEndian.AppendUint64(b, valueTime)
	b = append(b, 0, 0)
	return append(b, data...)
}

func array(elems ...func([]byte) []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, uint32(len(elems)))
		for _, e := range elems {
			b = e(b)
		}
		return b
	}
}

func u(v uint64) func([]byte) []byte {
	return func(b []byte) []byte { return msgpack.AppendUint(b, v) }
}
func boolean(v bool) func([]byte) []byte {
	return func(b []byte) []byte { return msgpack.AppendBool(b, v) }
}
func raw(p []byte) func([]byte) []byte {
	return func(b []byte) []byte { return msgpack.AppendRaw(b, p) }
}

// exchange is one kumofs call: the request params and the reply.
type exchange struct {
	name   string
	method uint32
	params func([]byte) []byte
	result func([]byte) []byte // nil result if nil
	err    *Error              // error reply if non-nil
}

func exchanges() []exchange {
	wseed := func(b []byte) []byte { return appendSeed(b, seedTime, addr1, addr2) }
	rseed := func(b []byte) []byte { return appendSeed(b, seedTime-1, addr1) }
	key := func(b []byte) []byte { return appendDBKey(b, "key") }
	return []exchange{
		{name: "GetNodesInfo", method: 99, params: array(),
			result: array(wseed, array(raw(addr3)))},
		{name: "AttachNewServers", method: 100, params: array(boolean(true))},
		{name: "GetStatus items", method: 97, params: array(u(7)), result: u(12345)},
		{name: "GetStatus version", method: 97, params: array(u(3)),
			result: func(b []byte) []byte { return msgpack.AppendString(b, "0.4.13 revision  ") }},
		{name: "HashSpaceRequest", method: 1, params: array(), result: array(wseed, rseed)},
		{name: "Set", method: 35, params: array(u(0), key, func(b []byte) []byte { return appendDBValue(b, "value") }),
			result: u(valueTime)},
		{name: "Get hit", method: 34, params: array(key),
			result: func(b []byte) []byte { return appendDBValue(b, "value") }},
		{name: "Get miss", method: 34, params: array(func(b []byte) []byte { return appendDBKey(b, "nokey") })},
		{name: "Delete", method: 36, params: array(u(0), key), result: boolean(true)},
		{name: "CreateBackup empty suffix", method: 102, params: array(raw(nil)),
			err: &Error{Msg: "empty suffix"}},
		{name: "Set obsolete", method: 35, params: array(u(0), key, func(b []byte) []byte { return appendDBValue(b, "v") }),
			err: &Error{Code: CodeServer}},
	}
}

// goldenFrames renders every exchange as the request (msgid i+1) and the
// response frames, plus a cluster hello.
func goldenFrames() (names []string, frames [][]byte) {
	add := func(name string, b []byte) {
		names = append(names, name)
		frames = append(frames, b)
	}
	h := msgpack.AppendArrayHeader(nil, 3)
	h = msgpack.AppendUint(h, 2)
	h = msgpack.AppendRaw(h, addr1)
	add("hello server 127.0.0.1:19800", msgpack.AppendUint(h, 1))
	for i, ex := range exchanges() {
		id := uint64(i + 1)
		b := msgpack.AppendArrayHeader(nil, 4)
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendUint(b, id)
		b = msgpack.AppendUint(b, uint64(ex.method))
		add(ex.name+" request", ex.params(b))

		b = msgpack.AppendArrayHeader(nil, 4)
		b = msgpack.AppendUint(b, 1)
		b = msgpack.AppendUint(b, id)
		switch {
		case ex.err == nil:
			b = msgpack.AppendNil(b)
		case ex.err.Code != 0:
			b = msgpack.AppendUint(b, uint64(ex.err.Code))
		default:
			b = msgpack.AppendString(b, ex.err.Msg)
		}
		if ex.result == nil {
			b = msgpack.AppendNil(b)
		} else {
			b = ex.result(b)
		}
		add(ex.name+" response", b)
	}
	return names, frames
}

// TestGoldenFrames pins the byte layout of the kumofs messages the tools use.
func TestGoldenFrames(t *testing.T) {
	names, frames := goldenFrames()
	var sb strings.Builder
	for i := range names {
		fmt.Fprintf(&sb, "%s: %x\n", names[i], frames[i])
	}
	const path = "testdata/frames.golden"
	if *update {
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if string(want) != sb.String() {
		t.Fatalf("frames differ from %s; got:\n%s", path, sb.String())
	}
	// Spot-check hand-decoded bytes so the golden file cannot drift silently.
	for name, prefix := range map[string]string{
		"GetNodesInfo request":               "9400016390",
		"AttachNewServers request":           "94000264" + "91c3",
		"AttachNewServers response":          "940102c0c0",
		"GetStatus items request":            "9400036191" + "07",
		"GetStatus items response":           "940103c0cd3039",
		"Get miss response":                  "940108c0c0",
		"Delete request":                     "940009249200ab" + "0123456789abcdef" + "6b6579",
		"Delete response":                    "940109c0c3",
		"CreateBackup empty suffix response": "94010aac" + hex.EncodeToString([]byte("empty suffix")) + "c0",
		"Set obsolete response":              "94010b06c0",
		"hello server 127.0.0.1:19800":       "9302a64d587f00000101",
	} {
		i := indexOf(names, name)
		if got := hex.EncodeToString(frames[i]); !strings.HasPrefix(got, prefix) {
			t.Errorf("%s = %s, want prefix %s", name, got, prefix)
		}
	}
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	panic("no golden frame " + name)
}

// TestGoldenWire runs the exchanges through the real Client and Server and
// checks the bytes on the wire equal the golden frames, in both directions.
func TestGoldenWire(t *testing.T) {
	names, frames := goldenFrames()
	exs := exchanges()

	// Server side: golden requests in, golden responses out.
	ts := startServer(t, &Server{Handler: HandlerFunc(func(req *Request) {
		for _, ex := range exs {
			if ex.method != req.Method {
				continue
			}
			want := ex.params(nil)
			if string(want) != string(req.Params) {
				continue
			}
			if ex.err != nil {
				req.ReplyError(ex.err)
			} else {
				req.Reply(ex.result)
			}
			return
		}
		t.Errorf("unexpected request %d %x", req.Method, req.Params)
		req.ReplyError(&Error{Code: CodeProtocol})
	})})
	nc := rawConn(t, ts.addr)
	for i, name := range names {
		if !strings.HasSuffix(name, " request") {
			continue
		}
		nc.Write(frames[i])
		if got := readValue(t, nc); string(got) != string(frames[i+1]) {
			t.Errorf("%s: server replied %x, want %x", name, got, frames[i+1])
		}
	}

	// Client side: golden requests out (msgids 1, 2, ...), golden responses
	// in, decoded into the right results and errors.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cl := dialTest(t, l.Addr().String(), Options{Hello: &Hello{Addr: addr1, Role: 1}})
	peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if got := readValue(t, peer); string(got) != string(frames[0]) {
		t.Fatalf("hello %x, want %x", got, frames[0])
	}
	for i, ex := range exs {
		type outcome struct {
			res Result
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := cl.Call(context.Background(), ex.method, ex.params)
			done <- outcome{res, err}
		}()
		req := frames[1+2*i]
		if got := readValue(t, peer); string(got) != string(req) {
			t.Fatalf("%s: client sent %x, want %x", ex.name, got, req)
		}
		peer.Write(frames[2+2*i])
		o := <-done
		switch {
		case ex.err != nil:
			e, ok := o.err.(*Error)
			if !ok || e.Code != ex.err.Code || e.Msg != ex.err.Msg {
				t.Errorf("%s: err %v, want %v", ex.name, o.err, ex.err)
			}
		case o.err != nil:
			t.Errorf("%s: %v", ex.name, o.err)
		default:
			want := msgpack.AppendNil(nil)
			if ex.result != nil {
				want = ex.result(nil)
			}
			if string(o.res.Bytes()) != string(want) {
				t.Errorf("%s: result %x, want %x", ex.name, o.res.Bytes(), want)
			}
			o.res.Release()
		}
	}
}
