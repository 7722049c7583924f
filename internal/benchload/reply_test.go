package benchload

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

// fakeConn reads canned replies from r and discards writes.
type fakeConn struct {
	net.Conn // nil; only Read, Write and Close are used
	r        io.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *fakeConn) Close() error                { return nil }

// repeater reads pattern over and over.
type repeater struct {
	pattern []byte
	off     int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pattern[r.off:])
		n += c
		r.off = (r.off + c) % len(r.pattern)
	}
	return n, nil
}

// testWorker returns worker 0 of a one-connection run of cfg over nc.
func testWorker(t testing.TB, cfg Config, nc net.Conn) *worker {
	t.Helper()
	cfg.Conns, cfg.Ops = 1, 1
	if cfg.MultiGet == 0 {
		cfg.MultiGet = 1
	}
	if cfg.Pipeline == 0 {
		cfg.Pipeline = 1
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	sh := &shared{cfg: &cfg}
	if cfg.Verify {
		sh.ver = &verifier{size: cfg.ValueSize, keys: make([]keyState, cfg.Keys)}
		copy(sh.ver.runID[:], "0badcafe")
	}
	w := newWorker(sh, 0, 1)
	w.attach(nc)
	return w
}

// batch writes and runs n requests.
func (w *worker) batch(n int) {
	for i := 0; i < n; i++ {
		w.writeRequest(&w.reqs[i], i)
	}
	w.runBatch(w.reqs[:n], true)
}

// binRes builds a binary response.
func binRes(op byte, status uint16, opaque uint32, extras, key, value []byte) []byte {
	h := make([]byte, binHeaderLen)
	h[0] = binResMagic
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(extras))
	binary.BigEndian.PutUint16(h[6:], status)
	binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	h = append(h, extras...)
	h = append(h, key...)
	return append(h, value...)
}

const key0 = "kb:0000000000"

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// replyCases are canned replies to one batch. Keys is 1, so every request
// names key0.
var replyCases = []struct {
	name                    string
	cfg                     Config
	n                       int
	reply                   []byte
	hits, misses, errs, ops uint64
	dropped                 bool
}{
	{"text get hit", Config{GetRatio: 1, ValueSize: 3}, 1,
		[]byte("VALUE " + key0 + " 0 3\r\nabc\r\nEND\r\n"), 1, 0, 0, 1, false},
	{"text get with cas", Config{GetRatio: 1, ValueSize: 3}, 1,
		[]byte("VALUE " + key0 + " 5 3 99\r\nabc\r\nEND\r\n"), 1, 0, 0, 1, false},
	{"text pipelined miss and hit", Config{GetRatio: 1, ValueSize: 3, Pipeline: 2}, 2,
		[]byte("END\r\nVALUE " + key0 + " 0 0\r\n\r\nEND\r\n"), 1, 1, 0, 2, false},
	{"text mget two of three", Config{GetRatio: 1, ValueSize: 3, MultiGet: 3}, 1,
		[]byte("VALUE " + key0 + " 0 1\r\na\r\nVALUE " + key0 + " 0 1\r\nb\r\nEND\r\n"), 2, 1, 0, 1, false},
	{"text set stored", Config{GetRatio: 0, ValueSize: 3, Pipeline: 2}, 2,
		[]byte("STORED\r\nSERVER_ERROR out of memory\r\n"), 0, 0, 1, 2, false},
	{"text get server error", Config{GetRatio: 1, ValueSize: 3}, 1,
		[]byte("SERVER_ERROR busy\r\n"), 0, 0, 1, 1, false},
	{"text wrong key", Config{GetRatio: 1, ValueSize: 3}, 1,
		[]byte("VALUE other 0 1\r\na\r\nEND\r\n"), 0, 0, 1, 1, true},
	{"text bad data end", Config{GetRatio: 1, ValueSize: 3}, 1,
		[]byte("VALUE " + key0 + " 0 1\r\nabEND\r\n"), 0, 0, 1, 1, true},
	{"text bare LF", Config{GetRatio: 1, ValueSize: 3}, 1,
		[]byte("END\n"), 0, 0, 1, 1, true},
	{"text ERROR", Config{GetRatio: 0, ValueSize: 3}, 1,
		[]byte("ERROR\r\n"), 0, 0, 1, 1, true},
	{"text truncated", Config{GetRatio: 1, ValueSize: 3, Pipeline: 3}, 3,
		[]byte("END\r\nVALU"), 0, 1, 2, 3, true},
	{"binary get hit", Config{Binary: true, GetRatio: 1, ValueSize: 3}, 1,
		binRes(opGet, 0, 0, []byte{0, 0, 0, 0}, nil, []byte("abc")), 1, 0, 0, 1, false},
	{"binary get miss and error", Config{Binary: true, GetRatio: 1, ValueSize: 3, Pipeline: 2}, 2,
		cat(binRes(opGet, 1, 0, nil, nil, []byte("Not found")), binRes(opGet, 0x82, 0, nil, nil, nil)), 0, 1, 1, 2, false},
	{"binary mget", Config{Binary: true, GetRatio: 1, ValueSize: 3, MultiGet: 3}, 1,
		cat(binRes(opGetKQ, 0, 1, []byte{0, 0, 0, 0}, []byte(key0), []byte("x")), binRes(opNoop, 0, 3, nil, nil, nil)), 1, 2, 0, 1, false},
	{"binary mget out of order", Config{Binary: true, GetRatio: 1, ValueSize: 3, MultiGet: 3}, 1,
		cat(binRes(opGetKQ, 0, 2, nil, []byte(key0), nil), binRes(opGetKQ, 0, 1, nil, []byte(key0), nil)), 1, 2, 1, 1, true},
	{"binary set", Config{Binary: true, GetRatio: 0, ValueSize: 3, Pipeline: 2}, 2,
		cat(binRes(opSet, 0, 0, nil, nil, nil), binRes(opSet, 5, 0, nil, nil, nil)), 0, 0, 1, 2, false},
	{"binary bad magic", Config{Binary: true, GetRatio: 0, ValueSize: 3}, 1,
		bytes.Repeat([]byte{0x80}, binHeaderLen), 0, 0, 1, 1, true},
	{"binary wrong opcode", Config{Binary: true, GetRatio: 0, ValueSize: 3}, 1,
		binRes(opGet, 0, 0, nil, nil, nil), 0, 0, 1, 1, true},
	{"binary body shorter than key", Config{Binary: true, GetRatio: 1, ValueSize: 3}, 1,
		func() []byte { b := binRes(opGet, 0, 0, nil, nil, nil); b[3] = 9; return b }(), 0, 0, 1, 1, true},
}

// TestReplies parses canned replies whole, one byte per read, and in halves.
func TestReplies(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for _, tt := range replyCases {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Keys = 1
				w := testWorker(t, cfg, &fakeConn{r: wrap(bytes.NewReader(tt.reply))})
				w.batch(tt.n)
				if w.hits != tt.hits || w.misses != tt.misses || w.errs.Load() != tt.errs || w.ops.Load() != tt.ops {
					t.Fatalf("hits %d misses %d errs %d ops %d, want %d %d %d %d",
						w.hits, w.misses, w.errs.Load(), w.ops.Load(), tt.hits, tt.misses, tt.errs, tt.ops)
				}
				if dropped := !w.connected(); dropped != tt.dropped {
					t.Fatalf("dropped %v, want %v", dropped, tt.dropped)
				}
				if !tt.dropped {
					if rest, _ := io.ReadAll(w.r); len(rest) != 0 {
						t.Fatalf("%d bytes left unread: %q", len(rest), rest)
					}
				}
			})
		}
	}
}

// TestParseValueLine covers the VALUE line fields.
func TestParseValueLine(t *testing.T) {
	tests := []struct {
		in   string
		key  string
		size int
		ok   bool
	}{
		{"k 0 5", "k", 5, true},
		{"k 1 0 77", "k", 0, true},
		{"k 0", "", 0, false},
		{"k 0 5 1 2", "", 0, false},
		{"k  0 5", "", 0, false},
		{"k 0 -5", "", 0, false},
		{"k x 5", "", 0, false},
		{"k 0 99999999", "", 0, false},
		{"k 0 5 ", "", 0, false},
	}
	for _, tt := range tests {
		key, size, ok := parseValueLine([]byte(tt.in))
		if string(key) != tt.key || size != tt.size || ok != tt.ok {
			t.Errorf("parseValueLine(%q) = %q %d %v, want %q %d %v", tt.in, key, size, ok, tt.key, tt.size, tt.ok)
		}
	}
}

// TestHotPathAllocs: a batch of gets or sets, text or binary, with or
// without verify, allocates nothing.
func TestHotPathAllocs(t *testing.T) {
	const size = 64
	v := make([]byte, size)
	(&verifier{size: size, runID: [8]byte([]byte("0badcafe"))}).fill(v, []byte(key0), 0, 1)
	tests := []struct {
		name  string
		cfg   Config
		reply []byte
	}{
		{"text get", Config{GetRatio: 1}, cat([]byte("VALUE "+key0+" 0 64\r\n"), v, []byte("\r\nEND\r\n"))},
		{"text set", Config{GetRatio: 0}, []byte("STORED\r\n")},
		{"binary get", Config{Binary: true, GetRatio: 1}, binRes(opGet, 0, 0, []byte{0, 0, 0, 0}, nil, v)},
		{"binary set", Config{Binary: true, GetRatio: 0}, binRes(opSet, 0, 0, nil, nil, nil)},
	}
	for _, tt := range tests {
		for _, verify := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Keys, cfg.ValueSize, cfg.Pipeline, cfg.Verify = 1, size, 8, verify
				w := testWorker(t, cfg, &fakeConn{r: &repeater{pattern: tt.reply}})
				if verify {
					w.sh.ver.keys[0].issued.Store(1 << 30) // version 1 is possible
				}
				if n := testing.AllocsPerRun(200, func() { w.batch(8) }); n != 0 {
					t.Fatalf("%v allocations per batch", n)
				}
				if w.errs.Load() != 0 || w.wrong != 0 || !w.connected() {
					t.Fatalf("errs %d wrong %d connected %v", w.errs.Load(), w.wrong, w.connected())
				}
			})
		}
	}
}

// FuzzReply feeds arbitrary bytes as the replies to a batch of two requests:
// parsing never panics and every request is counted once.
func FuzzReply(f *testing.F) {
	for _, tt := range replyCases {
		f.Add(tt.reply, tt.cfg.Binary, uint8(tt.cfg.MultiGet), tt.cfg.GetRatio == 1)
	}
	f.Fuzz(func(t *testing.T, reply []byte, bin bool, mget uint8, get bool) {
		cfg := Config{Binary: bin, GetRatio: 0, ValueSize: 40, Keys: 3, Pipeline: 2, MultiGet: int(mget%4) + 1, Verify: true}
		if get {
			cfg.GetRatio = 1
		}
		w := testWorker(t, cfg, &fakeConn{r: bytes.NewReader(reply)})
		w.batch(2)
		if w.ops.Load() != 2 {
			t.Fatalf("ops %d, want 2", w.ops.Load())
		}
	})
}
