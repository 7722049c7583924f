package gateway

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// localGateway returns a gateway embedded in the server at self, which
// owns every key, whose reads go to read; the in-process connection
// cannot be dialed, so a read that leaves ReadLocal fails.
func localGateway(t *testing.T, read func(dbkey []byte, f func(v *wire.Value)) error) *Gateway {
	t.Helper()
	self, _ := ring.ParseAddr("127.0.0.1:19897", 19800)
	g := testGateway()
	g.cfg.Local = self
	g.cfg.DialLocal = func() (net.Conn, error) { return nil, errors.New("no pipe in this test") }
	g.cfg.ReadLocal = read
	g.cfg.RetryTimeout = 50 * time.Millisecond
	g.cfg.CallTimeout = time.Second
	g.ctx, g.cancel = context.WithCancel(context.Background())
	m := map[ring.Addr]*rpc.Client{}
	g.servers.Store(&m)
	hs := ring.New([]ring.Node{{Addr: self, Active: true}}, 1)
	g.rhs.Store(hs)
	g.whs.Store(hs)
	t.Cleanup(func() {
		g.cancel()
		for _, c := range *g.servers.Load() {
			c.Close()
		}
	})
	return g
}

// Ensure that an embedded gateway answers the reads its own server serves
// first through ReadLocal, before GetAsync returns and on the blocking
// path, with values, misses and expired values told apart; that the
// dbkey it asks for is the key's; and that a ReadLocal failure sends the
// read on through RPC.
func TestReadLocalPath(t *testing.T) {
	var calls atomic.Int32
	var val *wire.Value
	var fail error
	g := localGateway(t, func(dbkey []byte, f func(v *wire.Value)) error {
		calls.Add(1)
		if want := wire.AppendDBKey(nil, ring.Hash([]byte("k")), []byte("k")); string(dbkey) != string(want) {
			t.Errorf("ReadLocal(%x), want %x", dbkey, want)
		}
		if fail != nil {
			return fail
		}
		f(val)
		return nil
	})
	type result struct {
		it  memcache.Item
		err error
		n   int
	}
	getAsync := func() (result, bool) {
		var r result
		ok := g.GetAsync([]byte("k"), false, func(it *memcache.Item, err error) {
			r.n++
			r.err = err
			if it != nil && err == nil {
				r.it = *it
				r.it.Value = append([]byte(nil), it.Value...)
			}
		})
		return r, ok
	}

	val = &wire.Value{Clock: 42, Flags: 7, Data: []byte("hello")}
	r, ok := getAsync()
	if !ok || r.n != 1 || r.err != nil || string(r.it.Value) != "hello" || r.it.Flags != 7 || r.it.CAS != 42 {
		t.Fatalf("GetAsync of a local value: started %v, done %d times, %+v, %v", ok, r.n, r.it, r.err)
	}
	var it memcache.Item
	dst := make([]byte, 0, 16)
	if err := g.Get(context.Background(), []byte("k"), dst, &it); err != nil || string(it.Value) != "hello" || it.CAS != 42 {
		t.Fatalf("Get of a local value: %+v, %v", it, err)
	}
	val.Data[0] = 'j' // the value must have been copied into dst
	if string(it.Value) != "hello" {
		t.Errorf("Get's value aliases the store's buffer: %q", it.Value)
	}

	for name, v := range map[string]*wire.Value{
		"miss":      nil,
		"tombstone": {Clock: 43, Tombstone: true},
		"expired":   {Clock: 44, Exptime: 1, Data: []byte("x")},
	} {
		val = v
		if r, ok := getAsync(); !ok || r.n != 1 || r.err != memcache.ErrNotFound {
			t.Errorf("GetAsync of a %s: started %v, done %d times, %v", name, ok, r.n, r.err)
		}
		if err := g.Get(context.Background(), []byte("k"), nil, &it); err != memcache.ErrNotFound {
			t.Errorf("Get of a %s: %v", name, err)
		}
	}

	// A refusal sends the read to RPC, which cannot reach the server here.
	fail = &rpc.Error{Msg: wire.MsgNotReady}
	before := calls.Load()
	if r, ok := getAsync(); ok || r.n != 0 {
		t.Errorf("GetAsync after a refusal: started %v, done %d times; want it handed back", ok, r.n)
	}
	if err := g.Get(context.Background(), []byte("k"), nil, &it); err == nil {
		t.Error("Get after a refusal succeeded without a server")
	}
	if calls.Load() == before {
		t.Error("ReadLocal was not tried")
	}

	// A key another server reads first never reaches ReadLocal.
	other, _ := ring.ParseAddr("127.0.0.1:19896", 19800)
	g.rhs.Store(ring.New([]ring.Node{{Addr: other, Active: true}}, 2))
	before = calls.Load()
	g.GetAsync([]byte("k"), false, func(*memcache.Item, error) {})
	if calls.Load() != before {
		t.Error("ReadLocal was asked for a key owned elsewhere")
	}
}

// Ensure that an embedded gateway whose server owns a key but is not its
// first owner reads it in place only where the client does not see the
// CAS unique: gets (withCAS), multi-key gets with CAS and the blocking
// path go to the first owner, where cas is decided (see firstRead).
func TestCASReadsGoToFirstOwner(t *testing.T) {
	var calls atomic.Int32
	g := localGateway(t, func(dbkey []byte, f func(v *wire.Value)) error {
		calls.Add(1)
		f(&wire.Value{Clock: 42, Data: []byte("local")})
		return nil
	})
	other, _ := ring.ParseAddr("127.0.0.1:19896", 19800)
	hs := ring.New([]ring.Node{{Addr: g.cfg.Local, Active: true}, {Addr: other, Active: true}}, 2)
	g.rhs.Store(hs)
	g.whs.Store(hs)
	var keys [][]byte // keys whose first owner is other
	for i := 0; len(keys) < 2; i++ {
		k := []byte{'k', byte('a' + i)}
		if o := hs.Owners(ring.Hash(k)); o.Len() == 2 && o.At(0).Addr == other && o.At(1).Addr == g.cfg.Local {
			keys = append(keys, k)
		}
	}
	noop := func(*memcache.Item, error) {}
	tests := []struct {
		name  string
		read  func()
		local bool
	}{
		{"get", func() { g.GetAsync(keys[0], false, noop) }, true},
		{"gets", func() { g.GetAsync(keys[0], true, noop) }, false},
		{"multi get", func() { g.getMulti(nil, keys, false, []func(*memcache.Item, error){noop, noop}) }, true},
		{"multi gets", func() { g.getMulti(nil, keys, true, []func(*memcache.Item, error){noop, noop}) }, false},
		{"blocking", func() {
			var it memcache.Item
			g.Get(context.Background(), keys[0], nil, &it)
		}, false},
	}
	for _, tt := range tests {
		before := calls.Load()
		tt.read()
		if local := calls.Load() != before; local != tt.local {
			t.Errorf("%s: read in place %v, want %v", tt.name, local, tt.local)
		}
	}
}

// Ensure that an embedded gateway starts a set its own server coordinates
// through WriteLocal with the key's dbkey and the item's value, flags and
// exptime, reports the CAS that done gives (also when done runs later,
// on another goroutine), and sends the set on through RPC when WriteLocal
// refuses it.
func TestWriteLocalPath(t *testing.T) {
	g := localGateway(t, func([]byte, func(*wire.Value)) error { return errors.New("no reads here") })
	var calls atomic.Int32
	var refuse error
	later := make(chan func(), 1)
	g.cfg.WriteLocal = func(dbkey []byte, v *wire.Value, _ *rpc.Batch, done func(uint64, error)) error {
		calls.Add(1)
		if want := wire.AppendDBKey(nil, ring.Hash([]byte("k")), []byte("k")); string(dbkey) != string(want) {
			t.Errorf("WriteLocal(%x), want %x", dbkey, want)
		}
		if string(v.Data) != "val" || v.Flags != 9 || v.Exptime != 1<<31 {
			t.Errorf("WriteLocal's value %+v", v)
		}
		if refuse != nil {
			return refuse
		}
		later <- func() { done(77, nil) }
		return nil
	}
	it := memcache.Item{Key: []byte("k"), Value: []byte("val"), Flags: 9, Exptime: 1 << 31}
	got := make(chan uint64, 1)
	if !g.SetAsync(&it, func(cas uint64, err error) {
		if err != nil {
			t.Errorf("local set: %v", err)
		}
		got <- cas
	}) {
		t.Fatal("SetAsync did not start the local set")
	}
	go (<-later)()
	if cas := <-got; cas != 77 {
		t.Errorf("local set's CAS %d, want 77", cas)
	}

	refuse = ErrNoServer
	if g.SetAsync(&it, func(uint64, error) { t.Error("done called for a refused local set") }) {
		t.Error("a refused local set was started without a connection")
	}

	other, _ := ring.ParseAddr("127.0.0.1:19896", 19800)
	g.whs.Store(ring.New([]ring.Node{{Addr: other, Active: true}}, 2))
	before := calls.Load()
	g.SetAsync(&it, func(uint64, error) {})
	if calls.Load() != before {
		t.Error("WriteLocal was asked for a key coordinated elsewhere")
	}
}

// Ensure that an asynchronous delete's answer becomes the error memcache
// expects: nil for deleted, ErrNotFound, and for a failure
// memcache.ErrMaybeApplied exactly when the delete may have happened (the
// answer was lost), so that a retry finding no key reports success.
func TestFinishDelete(t *testing.T) {
	g := testGateway()
	status := func(st int) []byte {
		b := msgpack.AppendArrayHeader(nil, 2)
		b = msgpack.AppendUint(b, uint64(st))
		return msgpack.AppendUint(b, 9)
	}
	for _, tt := range []struct {
		name     string
		res      []byte
		err      error
		want     error
		maybeApp bool
	}{
		{"deleted", status(wire.StatusOK), nil, nil, false},
		{"not found", status(wire.StatusNotFound), nil, memcache.ErrNotFound, false},
		{"bad reply", []byte{0xc1}, nil, ErrBadReply, false},
		{"timeout", nil, rpc.ErrTimeout, rpc.ErrTimeout, true},
		{"connection lost", nil, rpc.ErrConnLost, rpc.ErrConnLost, true},
		{"replica unreachable", nil, &rpc.Error{Msg: wire.MsgReplication}, nil, true},
		{"not the coordinator", nil, &rpc.Error{Msg: wire.MsgObsolete}, nil, false},
	} {
		a := g.newAsync()
		var got error
		calls := 0
		a.delDone = func(err error) { calls++; got = err }
		a.finishDelete(tt.res, tt.err)
		if calls != 1 {
			t.Fatalf("%s: done called %d times", tt.name, calls)
		}
		if tt.want != nil && !errors.Is(got, tt.want) || tt.want == nil && tt.err == nil && got != nil {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
		if tt.err != nil && got == nil {
			t.Errorf("%s: a failure reported as success", tt.name)
		}
		if errors.Is(got, memcache.ErrMaybeApplied) != tt.maybeApp {
			t.Errorf("%s: %v; maybe applied %v, want %v", tt.name, got, !tt.maybeApp, tt.maybeApp)
		}
	}
}

// Ensure that an embedded gateway starts a delete its own server
// coordinates through DeleteLocal, reports found as deleted, not found as
// memcache.ErrNotFound and a failed replication as maybe applied (memcache
// then reads its retry's "not found" as the first attempt's success), and
// sends a refused one on through RPC.
func TestDeleteLocalPath(t *testing.T) {
	g := localGateway(t, func([]byte, func(*wire.Value)) error { return errors.New("no reads here") })
	var found bool
	var refuse, fail error
	calls := 0
	g.cfg.DeleteLocal = func(dbkey []byte, _ *rpc.Batch, done func(bool, error)) error {
		calls++
		if want := wire.AppendDBKey(nil, ring.Hash([]byte("k")), []byte("k")); string(dbkey) != string(want) {
			t.Errorf("DeleteLocal(%x), want %x", dbkey, want)
		}
		if refuse != nil {
			return refuse
		}
		done(found, fail)
		return nil
	}
	for _, tt := range []struct {
		found bool
		want  error
	}{{true, nil}, {false, memcache.ErrNotFound}} {
		found = tt.found
		var got error
		n := 0
		if !g.DeleteAsync([]byte("k"), func(err error) { n++; got = err }) || n != 1 || got != tt.want {
			t.Errorf("local delete, found %v: done %d times with %v, want %v", tt.found, n, got, tt.want)
		}
	}
	fail = &rpc.Error{Msg: wire.MsgReplication}
	var got error
	if !g.DeleteAsync([]byte("k"), func(err error) { got = err }) || !errors.Is(got, memcache.ErrMaybeApplied) {
		t.Errorf("local delete whose replication failed: %v, want memcache.ErrMaybeApplied", got)
	}
	fail = nil
	refuse = ErrNoServer
	if g.DeleteAsync([]byte("k"), func(error) { t.Error("done called for a refused local delete") }) {
		t.Error("a refused local delete was started without a connection")
	}
	if calls != 4 {
		t.Errorf("DeleteLocal called %d times, want 4", calls)
	}
}
