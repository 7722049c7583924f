package gateway

import (
	"errors"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// The asynchronous fast path (memcache.AsyncBackend): a lone get or set is
// sent to the first owner (get) or the coordinator (set) once, and the
// server's answer is turned into the memcached reply on the goroutine that
// reads it, so the client connection's goroutine need not be woken. Any
// failure (no connection, an RPC error, a status other than success) hands
// the request back to memcache, which serves it again through Get or Store
// with the usual fail-over, relays and retries.

// asyncCall is the state of one asynchronous request, pooled with its
// callbacks bound once so that the fast path does not allocate.
type asyncCall struct {
	g       *Gateway
	start   time.Time
	kb      [maxKey]byte
	dbkey   []byte
	it      memcache.Item      // the get's result, valid during getDone
	set     *memcache.Item     // the set's item, valid only while it is sent
	mode    memcache.StoreMode // the set's: ModeSet, ModeAdd or ModeReplace
	cmd     int                // a keyed write's metric: cmdDelete or cmdTouch
	exptime uint32             // a touch's
	delta   uint64             // an incr's or decr's
	decr    bool
	reqID   uint64        // a request id: incr, decr, delete, add, replace, append, prepend
	keep    *[]byte       // a store's value, kept for a retry (not a plain set's)
	keepIt  memcache.Item // the kept store's flags and exptime
	val     wire.Value    // a local set's value, valid only during WriteLocal
	getDone func(it *memcache.Item, err error)
	setDone func(cas uint64, err error)
	delDone func(err error)

	getArgs, setArgs func([]byte) []byte         // bound methods
	onGet, onSet     func(res []byte, err error) // bound methods
	onLocal          func(v *wire.Value)         // bound finishLocal
	onLocalSet       func(ct uint64, err error)  // bound finishLocalSet
	delArgs          func([]byte) []byte         // bound appendDeleteArgs
	touchArgs        func([]byte) []byte         // bound appendTouchArgs
	incrArgs         func([]byte) []byte         // bound appendIncrArgs
	onIncr           func(res []byte, err error) // bound finishIncr
	onDelete         func(res []byte, err error) // bound finishDelete
	onLocalDelete    func(found bool, err error) // bound finishLocalDelete
}

var asyncPool sync.Pool // of *asyncCall

// keepPool holds the buffers that keep an async append's value for a
// retry; buffers over 64 KiB are not kept.
var keepPool sync.Pool // of *[]byte

func getKeep(n int) *[]byte {
	if b, _ := keepPool.Get().(*[]byte); b != nil && cap(*b) >= n {
		return b
	}
	b := make([]byte, 0, max(n, 1024))
	return &b
}

func putKeep(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		keepPool.Put(b)
	}
}

func (g *Gateway) newAsync() *asyncCall {
	a, _ := asyncPool.Get().(*asyncCall)
	if a == nil {
		a = new(asyncCall)
		a.getArgs, a.setArgs = a.appendGetArgs, a.appendSetArgs
		a.onGet, a.onSet = a.finishGet, a.finishSet
		a.onLocal, a.onLocalSet = a.finishLocal, a.finishLocalSet
		a.delArgs, a.onDelete, a.onLocalDelete = a.appendDeleteArgs, a.finishDelete, a.finishLocalDelete
		a.touchArgs = a.appendTouchArgs
		a.incrArgs, a.onIncr = a.appendIncrArgs, a.finishIncr
	}
	a.g = g
	return a
}

func (a *asyncCall) free() {
	if a.keep != nil {
		putKeep(a.keep)
		a.keep = nil
	}
	a.g, a.set, a.getDone, a.setDone, a.delDone = nil, nil, nil, nil, nil
	a.mode = memcache.ModeSet
	a.val = wire.Value{}
	a.it = memcache.Item{}
	asyncPool.Put(a)
}

// GetAsync implements memcache.AsyncBackend.
func (g *Gateway) GetAsync(key []byte, withCAS bool, done func(it *memcache.Item, err error)) bool {
	return g.getAsync(nil, key, withCAS, done)
}

// SetAsync implements memcache.AsyncBackend.
func (g *Gateway) SetAsync(it *memcache.Item, done func(cas uint64, err error)) bool {
	return g.setAsync(nil, it, done)
}

// NewBatch implements memcache.BatchBackend.
func (g *Gateway) NewBatch() memcache.Batch { return &batch{g: g} }

// batch is a memcache.Batch: the requests started through it are held in
// an rpc.Batch until Flush.
type batch struct {
	g  *Gateway
	rb rpc.Batch
}

func (b *batch) GetAsync(key []byte, withCAS bool, done func(it *memcache.Item, err error)) bool {
	return b.g.getAsync(&b.rb, key, withCAS, done)
}

func (b *batch) SetAsync(it *memcache.Item, done func(cas uint64, err error)) bool {
	return b.g.setAsync(&b.rb, it, done)
}

func (b *batch) Flush() { b.rb.Flush() }

// TouchAsync implements memcache.AsyncToucher.
func (g *Gateway) TouchAsync(key []byte, exptime int64, done func(err error)) bool {
	return g.touchAsync(nil, key, exptime, done)
}

// TouchAsync implements memcache.AsyncToucher.
func (b *batch) TouchAsync(key []byte, exptime int64, done func(err error)) bool {
	return b.g.touchAsync(&b.rb, key, exptime, done)
}

// IncrAsync implements memcache.AsyncIncrer.
func (g *Gateway) IncrAsync(key []byte, delta uint64, decr bool, done func(val uint64, err error)) bool {
	return g.incrAsync(nil, key, delta, decr, done)
}

// IncrAsync implements memcache.AsyncIncrer.
func (b *batch) IncrAsync(key []byte, delta uint64, decr bool, done func(val uint64, err error)) bool {
	return b.g.incrAsync(&b.rb, key, delta, decr, done)
}

// StoreAsync implements memcache.AsyncStorer.
func (g *Gateway) StoreAsync(mode memcache.StoreMode, it *memcache.Item, done func(cas uint64, err error)) bool {
	return condStore(mode) && g.storeAsync(nil, mode, it, done)
}

// StoreAsync implements memcache.AsyncStorer.
func (b *batch) StoreAsync(mode memcache.StoreMode, it *memcache.Item, done func(cas uint64, err error)) bool {
	return condStore(mode) && b.g.storeAsync(&b.rb, mode, it, done)
}

// condStore reports whether StoreAsync takes mode: add, replace, append
// and prepend (a plain set goes through SetAsync; cas through Store).
func condStore(mode memcache.StoreMode) bool {
	switch mode {
	case memcache.ModeAdd, memcache.ModeReplace, memcache.ModeAppend, memcache.ModePrepend:
		return true
	}
	return false
}

// DeleteAsync implements memcache.AsyncDeleter.
func (g *Gateway) DeleteAsync(key []byte, done func(err error)) bool {
	return g.deleteAsync(nil, key, done)
}

// DeleteAsync implements memcache.AsyncDeleter.
func (b *batch) DeleteAsync(key []byte, done func(err error)) bool {
	return b.g.deleteAsync(&b.rb, key, done)
}

func (g *Gateway) getAsync(rb *rpc.Batch, key []byte, withCAS bool, done func(it *memcache.Item, err error)) bool {
	a := g.newAsync()
	var h uint64
	a.dbkey, h = g.dbKey(a.kb[:0], key)
	c, local := g.readConn(h, !withCAS)
	a.start, a.getDone = time.Now(), done
	if local && g.cfg.ReadLocal(a.dbkey, a.onLocal) == nil {
		a.free() // done has been called
		return true
	}
	if c == nil {
		a.free()
		return false
	}
	c.GoIn(rb, wire.SrvGet, a.getArgs, 0, a.onGet)
	return true
}

// readConn returns the live connection to the owner of h in the read hash
// space that a read tries first (firstRead with anyOwner), or nil if there
// is none (the blocking path then decides what to do), and whether that
// owner is the local server of an embedded gateway that reads it directly
// (ReadLocal).
func (g *Gateway) readConn(h uint64, anyOwner bool) (c *rpc.Conn, local bool) {
	o := g.rhs.Load().Owners(h)
	i := g.firstRead(o, anyOwner)
	if i < 0 {
		return nil, false
	}
	addr := o.At(i).Addr
	local = g.cfg.ReadLocal != nil && g.cfg.DialLocal != nil && addr == g.cfg.Local
	return g.openConn(addr), local
}

// openConn returns the open connection to the server at addr, or nil: the
// asynchronous paths never wait for a dial (the blocking path they fall
// back to does).
func (g *Gateway) openConn(addr ring.Addr) *rpc.Conn {
	if s := g.server(addr); s != nil {
		return s.Conn()
	}
	return nil
}

// finishLocal is f of ReadLocal for getAsync: it answers the get on the
// caller's goroutine, before getAsync returns.
func (a *asyncCall) finishLocal(v *wire.Value) {
	err := valueItem(v, &a.it, time.Now().Unix())
	a.g.observe(cmdGet, a.start, err)
	a.getDone(&a.it, err)
}

func (a *asyncCall) appendGetArgs(b []byte) []byte {
	b = msgpack.AppendArrayHeader(b, 1)
	return msgpack.AppendRaw(b, a.dbkey)
}

// finishGet runs on the connection's read goroutine; res is valid only
// during the call, and so is the item handed to getDone.
func (a *asyncCall) finishGet(res []byte, err error) {
	g, done := a.g, a.getDone
	if err == nil {
		err = getResult(res, &a.it)
	} else {
		g.m.rpcErrs.Count(rpc.ErrorKind(err))
	}
	if err == nil || err == memcache.ErrNotFound {
		g.observe(cmdGet, a.start, err)
	} // else the blocking retry observes it
	done(&a.it, err)
	a.free()
}

func (g *Gateway) setAsync(rb *rpc.Batch, it *memcache.Item, done func(cas uint64, err error)) bool {
	if g.setDirect(rb, it, done) {
		return true
	}
	return g.storeAsync(rb, memcache.ModeSet, it, done)
}

// storeAsync sends the store of it with mode (set, add, replace, append or
// prepend) to its key's coordinator; a plain set whose coordinator is the
// embedded gateway's own server is decided and stored in place. Every mode
// but set carries a request id, and one whose answer was lost after it
// left is sent again with it, blocking (retryStore); any other failure
// goes back to memcache, which stores again through Store.
func (g *Gateway) storeAsync(rb *rpc.Batch, mode memcache.StoreMode, it *memcache.Item, done func(cas uint64, err error)) bool {
	a := g.newAsync()
	var h uint64
	a.dbkey, h = g.dbKey(a.kb[:0], it.Key)
	n, ok := g.whs.Load().Owners(h).Coordinator()
	if !ok {
		a.free()
		return false
	}
	if mode == memcache.ModeSet && g.cfg.WriteLocal != nil && g.cfg.DialLocal != nil && n.Addr == g.cfg.Local {
		a.start, a.setDone = time.Now(), done
		a.val = wire.Value{Flags: it.Flags, Exptime: exptime32(it.Exptime), Data: it.Value}
		if g.cfg.WriteLocal(a.dbkey, &a.val, rb, a.onLocalSet) == nil {
			return true // a is finishLocalSet's now
		}
		a.val = wire.Value{}
	}
	c := g.openConn(n.Addr)
	if c == nil {
		a.free()
		return false
	}
	a.start, a.setDone, a.set, a.mode = time.Now(), done, it, mode
	if mode != memcache.ModeSet {
		// Sent with a request id; the value is kept, since the item is
		// gone once sent, for a retry if the answer is lost.
		a.reqID = g.nextReqID()
		a.keep = getKeep(len(it.Value))
		*a.keep = append((*a.keep)[:0], it.Value...)
		a.keepIt = memcache.Item{Flags: it.Flags, Exptime: it.Exptime}
	}
	c.GoIn(rb, wire.SrvStore, a.setArgs, g.cfg.WriteTimeout, a.onSet)
	return true
}

// appendSetArgs runs inside Go, while a.set is valid.
func (a *asyncCall) appendSetArgs(b []byte) []byte {
	it := a.set
	v := wire.Value{Clock: a.g.clk.Current(), Flags: it.Flags, Exptime: exptime32(it.Exptime), Data: it.Value} // see store
	if a.keep != nil {
		b = msgpack.AppendArrayHeader(b, 6)
	} else {
		b = msgpack.AppendArrayHeader(b, 4)
	}
	b = msgpack.AppendUint(b, modes[a.mode])
	b = msgpack.AppendRaw(b, a.dbkey)
	b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
	b = wire.AppendDBValue(b, &v)
	b = msgpack.AppendUint(b, 0)
	if a.keep != nil { // not a plain set: a request id, and the limit of appends
		b = msgpack.AppendUint(b, a.reqID)
		b = msgpack.AppendUint(b, a.g.itemLimit())
	}
	return b
}

// finishLocalSet is done of WriteLocal for setAsync.
func (a *asyncCall) finishLocalSet(ct uint64, err error) {
	g, done := a.g, a.setDone
	if err == nil {
		g.observe(cmdStore, a.start, nil)
	}
	a.free()
	done(ct, err)
}

func (a *asyncCall) finishSet(res []byte, err error) {
	g, done := a.g, a.setDone
	a.set = nil
	var cas uint64
	if err == nil {
		var st int
		var p []byte
		if st, p, err = statusResult(res); err == nil && st != wire.StatusOK {
			err = statusError(st)
		} else if err == nil {
			cas, _, _ = msgpack.ReadUint(p)
		} else if a.mode != memcache.ModeSet { // it was applied, and the answer is unreadable
			err = errors.Join(memcache.ErrMaybeApplied, err)
		}
	} else {
		g.m.rpcErrs.Count(rpc.ErrorKind(err))
		if a.keep != nil && maybeApplied(err) {
			a.retryStore(done)
			return
		}
		if a.mode != memcache.ModeSet && maybeApplied(err) {
			err = errors.Join(memcache.ErrMaybeApplied, err)
		}
	}
	if err == nil || errors.Is(err, memcache.ErrNotStored) {
		g.observe(cmdStore, a.start, err)
	}
	a.free()
	done(cas, err)
}

// retryStore sends an add, replace, append or prepend whose answer was
// lost again with its request id, blocking, on a goroutine of its own (see
// incrAsync): the servers answer a first attempt they applied from their
// ids, so the retry's NOT_STORED stands.
func (a *asyncCall) retryStore(done func(cas uint64, err error)) {
	g, id, mode, start := a.g, a.reqID, a.mode, a.start
	it := a.keepIt
	it.Key = append([]byte(nil), a.dbkey[8+len(g.cfg.KeyPrefix):]...) // store prefixes it again
	it.Value = append([]byte(nil), *a.keep...)
	a.free()
	go func() {
		cas, err := g.store(g.ctx, mode, &it, id)
		g.observe(cmdStore, start, err)
		if err != nil && !errors.Is(err, memcache.ErrNotStored) {
			err = errors.Join(memcache.ErrMaybeApplied, err) // never served again under a new id
		}
		done(cas, err)
	}()
}

// deleteAsync sends the delete of key to its coordinator with a request
// id. An answer lost after the request left is waited for again with the
// same id, blocking, on a goroutine of its own (see incrAsync); any other
// failure goes back to memcache, which deletes again through Delete.
func (g *Gateway) deleteAsync(rb *rpc.Batch, key []byte, done func(err error)) bool {
	a := g.newAsync()
	var h uint64
	a.dbkey, h = g.dbKey(a.kb[:0], key)
	n, ok := g.whs.Load().Owners(h).Coordinator()
	if !ok {
		a.free()
		return false
	}
	a.start, a.delDone = time.Now(), done
	if g.cfg.DeleteLocal != nil && g.cfg.DialLocal != nil && n.Addr == g.cfg.Local &&
		g.cfg.DeleteLocal(a.dbkey, rb, a.onLocalDelete) == nil {
		return true // a is finishLocalDelete's now
	}
	c := g.openConn(n.Addr)
	if c == nil {
		a.free()
		return false
	}
	a.cmd = cmdDelete
	a.reqID = g.nextReqID()
	c.GoIn(rb, wire.SrvRemove, a.delArgs, g.cfg.WriteTimeout, a.onDelete)
	return true
}

// toCoordinator returns a new asyncCall for key (its dbkey set) and the
// open connection to the key's coordinator, or nils if there is none.
func (g *Gateway) toCoordinator(key []byte) (*asyncCall, *rpc.Conn) {
	a := g.newAsync()
	var h uint64
	a.dbkey, h = g.dbKey(a.kb[:0], key)
	if n, ok := g.whs.Load().Owners(h).Coordinator(); ok {
		if c := g.openConn(n.Addr); c != nil {
			return a, c
		}
	}
	a.free()
	return nil, nil
}

// touchAsync sends the touch of key to its coordinator once, and finishes
// as deleteAsync: any failure goes back to memcache, which touches again
// through Touch.
func (g *Gateway) touchAsync(rb *rpc.Batch, key []byte, exptime int64, done func(err error)) bool {
	a, c := g.toCoordinator(key)
	if a == nil {
		return false
	}
	a.start, a.delDone, a.cmd, a.exptime = time.Now(), done, cmdTouch, exptime32(exptime)
	c.GoIn(rb, wire.SrvTouch, a.touchArgs, g.cfg.WriteTimeout, a.onDelete)
	return true
}

// incrAsync sends the incr or decr of key to its coordinator, with a
// request id. An answer lost after it left is waited for by sending it
// again with the same id, blocking, on a goroutine of its own (the
// servers answer a repeated id with the first outcome, see arith); any
// other failure goes back to memcache, which serves it through Incr.
func (g *Gateway) incrAsync(rb *rpc.Batch, key []byte, delta uint64, decr bool, done func(val uint64, err error)) bool {
	a, c := g.toCoordinator(key)
	if a == nil {
		return false
	}
	a.start, a.setDone, a.delta, a.decr, a.reqID = time.Now(), done, delta, decr, g.nextReqID()
	c.GoIn(rb, wire.SrvArith, a.incrArgs, g.cfg.WriteTimeout, a.onIncr)
	return true
}

// appendIncrArgs appends SrvArith's ten params: [DBKey, delta, decr,
// create=false, initial, exptime, cas=0, touch=false, new_exptime,
// request_id].
func (a *asyncCall) appendIncrArgs(b []byte) []byte {
	b = msgpack.AppendArrayHeader(b, 10)
	b = msgpack.AppendRaw(b, a.dbkey)
	b = msgpack.AppendUint(b, a.delta)
	b = msgpack.AppendBool(b, a.decr)
	b = msgpack.AppendBool(b, false)
	b = msgpack.AppendUint(b, 0)
	b = msgpack.AppendUint(b, 0)
	b = msgpack.AppendUint(b, 0)
	b = msgpack.AppendBool(b, false)
	b = msgpack.AppendUint(b, 0)
	return msgpack.AppendUint(b, a.reqID)
}

func (a *asyncCall) finishIncr(res []byte, err error) {
	g, done := a.g, a.setDone
	var r memcache.ArithResult
	if err == nil {
		err = arithResult(res, &memcache.Arith{Delta: a.delta, Decr: a.decr}, 0, &r)
		if errors.Is(err, ErrBadReply) { // it was applied, and the answer is unreadable
			err = errors.Join(memcache.ErrMaybeApplied, err)
		}
	} else {
		g.m.rpcErrs.Count(rpc.ErrorKind(err))
		if maybeApplied(err) {
			// Send it again with its id, blocking, off this goroutine.
			ar := memcache.Arith{Delta: a.delta, Decr: a.decr}
			dbkey, id, start := append([]byte(nil), a.dbkey...), a.reqID, a.start
			h, _, _ := wire.SplitDBKey(dbkey)
			a.free()
			go func() {
				var r memcache.ArithResult
				err := g.arith(g.ctx, dbkey, h, &ar, 0, 0, id, &r)
				g.observe(cmdIncr, start, err)
				if err != nil && !errors.Is(err, memcache.ErrNotFound) && !errors.Is(err, memcache.ErrNonNumeric) {
					// Never served again by memcache (a new id could
					// count twice): SERVER_ERROR.
					err = errors.Join(memcache.ErrMaybeApplied, err)
				}
				done(r.Value, err)
			}()
			return
		}
	}
	if err == nil || errors.Is(err, memcache.ErrNotFound) || errors.Is(err, memcache.ErrNonNumeric) || errors.Is(err, memcache.ErrMaybeApplied) {
		g.observe(cmdIncr, a.start, err)
	} // else the blocking retry observes it
	a.free()
	done(r.Value, err)
}

// appendTouchArgs appends SrvTouch's [DBKey, exptime, want_value].
func (a *asyncCall) appendTouchArgs(b []byte) []byte {
	b = msgpack.AppendArrayHeader(b, 3)
	b = msgpack.AppendRaw(b, a.dbkey)
	b = msgpack.AppendUint(b, uint64(a.exptime))
	return msgpack.AppendBool(b, false)
}

// finishLocalDelete is done of DeleteLocal for deleteAsync. A delete the
// local server stored and could not replicate (or whose replication's
// answer was lost) may have taken effect: that is reported as
// memcache.ErrMaybeApplied, so that memcache's second attempt, which
// finds the tombstone, reports the first one's success.
func (a *asyncCall) finishLocalDelete(found bool, err error) {
	g, done := a.g, a.delDone
	if err == nil && !found {
		err = memcache.ErrNotFound
	}
	if err == nil || err == memcache.ErrNotFound {
		g.observe(cmdDelete, a.start, err)
	} else if maybeApplied(err) {
		err = errors.Join(memcache.ErrMaybeApplied, err)
	}
	a.free()
	done(err)
}

func (a *asyncCall) appendDeleteArgs(b []byte) []byte {
	b = msgpack.AppendArrayHeader(b, 3)
	b = msgpack.AppendRaw(b, a.dbkey)
	b = msgpack.AppendUint(b, 0)
	return msgpack.AppendUint(b, a.reqID)
}

// finishDelete is the completion of deleteAsync and touchAsync: both
// answer [status, ...].
func (a *asyncCall) finishDelete(res []byte, err error) {
	g, done := a.g, a.delDone
	if err == nil {
		var st int
		if st, _, err = statusResult(res); err == nil {
			err = statusError(st)
		}
	} else {
		g.m.rpcErrs.Count(rpc.ErrorKind(err))
		if maybeApplied(err) && a.cmd == cmdDelete {
			// Send it again with its id, blocking, off this goroutine.
			dbkey, id, start := append([]byte(nil), a.dbkey...), a.reqID, a.start
			h, _, _ := wire.SplitDBKey(dbkey)
			a.free()
			go func() {
				err := g.remove(g.ctx, dbkey, h, 0, id)
				g.observe(cmdDelete, start, err)
				if err != nil && !errors.Is(err, memcache.ErrNotFound) {
					err = errors.Join(memcache.ErrMaybeApplied, err)
				}
				done(err)
			}()
			return
		}
		if maybeApplied(err) {
			err = errors.Join(memcache.ErrMaybeApplied, err)
		}
	}
	if err == nil || err == memcache.ErrNotFound {
		g.observe(a.cmd, a.start, err)
	} // else the blocking retry observes it
	a.free()
	done(err)
}
