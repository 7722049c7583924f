package gateway

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Direct sets (wire.SrvSetDirect). A plain set through the coordinator
// costs a round trip to it and one from it to each replica: six messages
// that wake four processes, and most of a set's CPU on a small machine.
// Outside a rebalance, the gateway stamps a plain set with its own clock
// and sends it to every owner at once: three messages out, three back, and
// no server talks to another. Each owner stores the value only where a set
// through the coordinator would end the same (see wire.SrvSetDirect); when
// any owner did not, the set goes back to memcache, which sends it again
// through the coordinator (Store), which re-stamps it above whatever the
// owners keep. A value an owner did store meanwhile is then overwritten
// by that newer stamp everywhere.

// errDirectRefused hands a direct set that some owner did not store back
// to memcache, which serves it again through Store and the coordinator.
var errDirectRefused = errors.New("gateway: direct set not stored by every owner")

// directSet is the state of one direct set, pooled with its callbacks bound
// once so that the path does not allocate.
type directSet struct {
	g       *Gateway
	start   time.Time
	kb      [maxKey]byte
	dbkey   []byte
	it      *memcache.Item // valid only while the requests are appended
	v       wire.Value     // the value stored in place (a local one would escape)
	ct, wc  uint64         // the set's stamp; the whs clock it was decided under
	pending atomic.Int32
	refused atomic.Bool
	done    func(cas uint64, err error)

	args    func([]byte) []byte         // bound appendArgs
	onReply func(res []byte, err error) // bound finish
}

var directPool sync.Pool // of *directSet

// setDirect starts the plain set of it as a direct set and reports whether
// it did; it does not when a rebalance is under way, an owner is not active
// or not connected, or the servers do not know direct sets. done is called
// as for memcache.AsyncBackend.SetAsync.
func (g *Gateway) setDirect(rb *rpc.Batch, it *memcache.Item, done func(cas uint64, err error)) bool {
	if g.cfg.NoDirectSets || g.noDirect.off() {
		return false
	}
	w := g.whs.Load()
	if w.Clock() != g.rhs.Load().Clock() {
		return false // a rebalance: the coordinator reaches both placements
	}
	d, _ := directPool.Get().(*directSet)
	if d == nil {
		d = new(directSet)
		d.args, d.onReply = d.appendArgs, d.finish
	}
	var h uint64
	d.dbkey, h = g.dbKey(d.kb[:0], it.Key)
	o := w.Owners(h)
	var conns [ring.Replicas]*rpc.Conn
	n, local := o.Len(), -1
	if n == 0 || o.ActiveLen() != n {
		directPool.Put(d)
		return false
	}
	for i := 0; i < n; i++ {
		addr := o.At(i).Addr
		if g.cfg.SetDirectLocal != nil && g.cfg.DialLocal != nil && addr == g.cfg.Local {
			local = i
		}
		if conns[i] = g.openConn(addr); conns[i] == nil {
			directPool.Put(d)
			return false
		}
	}
	d.g, d.start, d.it, d.done = g, time.Now(), it, done
	d.ct, d.wc = g.clk.Now(), w.Clock()
	d.refused.Store(false)
	d.pending.Store(int32(n))
	if local >= 0 {
		// The embedded gateway's own server stores it in place, first:
		// while it counts as pending, d cannot complete.
		d.v = wire.Value{Clock: d.ct, Flags: it.Flags, Exptime: exptime32(it.Exptime), Data: it.Value}
		taken, stored, ct := g.cfg.SetDirectLocal(d.dbkey, &d.v, d.wc)
		d.v = wire.Value{} // holds no client buffer in the pool
		if taken {
			conns[local] = nil
			d.finishLocal(stored, ct) // with one owner, done ran: d is reused
		}
	}
	// d may be finished and reused as soon as the last request is
	// appended: nothing below touches it after that.
	for i := 0; i < n; i++ {
		if conns[i] != nil {
			conns[i].GoIn(rb, wire.SrvSetDirect, d.args, g.cfg.WriteTimeout, d.onReply)
		}
	}
	return true
}

// appendArgs runs inside GoIn, while d.it is valid.
func (d *directSet) appendArgs(b []byte) []byte {
	it := d.it
	v := wire.Value{Clock: d.ct, Flags: it.Flags, Exptime: exptime32(it.Exptime), Data: it.Value}
	b = msgpack.AppendArrayHeader(b, 4)
	b = msgpack.AppendUint(b, d.ct)
	b = msgpack.AppendRaw(b, d.dbkey)
	b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
	b = wire.AppendDBValue(b, &v)
	return msgpack.AppendUint(b, d.wc)
}

// finishLocal counts the answer of the embedded gateway's own server.
func (d *directSet) finishLocal(stored bool, ct uint64) {
	d.g.clk.Observe(ct)
	if !stored {
		d.refused.Store(true)
	}
	d.complete()
}

// finish counts one owner's answer; the last one completes the set.
func (d *directSet) finish(res []byte, err error) {
	g := d.g
	if err == nil {
		var stored bool
		var ct uint64
		var n uint32
		n, res, err = msgpack.ReadArrayHeader(res)
		if err == nil && n < 2 {
			err = ErrBadReply
		}
		if err == nil {
			stored, res, err = msgpack.ReadBool(res)
		}
		if err == nil {
			ct, _, err = msgpack.ReadUint(res)
		}
		if err == nil {
			g.clk.Observe(ct) // the next stamps follow the owner's clock
			if !stored {
				d.refused.Store(true)
			}
		}
	}
	if err != nil {
		if re, ok := err.(*rpc.Error); ok && re.Code == rpc.CodeProtocol {
			if g.noDirect.stop() {
				g.log.Infof("a server does not know direct sets (%v): sets go through coordinators for %v", err, fallbackFor)
			}
		}
		g.m.rpcErrs.Count(rpc.ErrorKind(err))
		d.refused.Store(true)
	}
	d.complete()
}

// complete counts one owner's answer; the last one completes the set.
func (d *directSet) complete() {
	if d.pending.Add(-1) != 0 {
		return
	}
	g, done, ct, start := d.g, d.done, d.ct, d.start
	ok := !d.refused.Load()
	d.g, d.it, d.done = nil, nil, nil
	directPool.Put(d)
	if !ok {
		g.m.directRefused.Inc()
		done(0, errDirectRefused)
		return
	}
	g.m.directStored.Inc()
	g.observe(cmdStore, start, nil)
	done(ct, nil)
}
