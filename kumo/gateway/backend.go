package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Errors the gateway answers with when no owner could serve a request.
var (
	ErrNoServer    = errors.New("gateway: no server available")
	ErrUnavailable = errors.New("gateway: cluster unavailable")
	ErrBadReply    = errors.New("gateway: malformed reply from server")
	// ErrMaybeApplied wraps the error of a write that was given up (the
	// retry timeout passed) after an attempt whose answer was lost: that
	// attempt may have taken effect.
	ErrMaybeApplied = errors.New("gateway: the server was lost before it answered; the request may have been applied")
)

var _ memcache.ArithBackend = (*Gateway)(nil)

// maxKey bounds a DBKey: hash, prefix and a 250-byte memcached key.
const maxKey = 8 + 256 + 250

// dbKey builds BE64(hash) ‖ prefix ‖ key into buf and returns it with the hash.
func (g *Gateway) dbKey(buf []byte, key []byte) ([]byte, uint64) {
	buf = append(buf[:8], g.cfg.KeyPrefix...)
	buf = append(buf, key...)
	h := ring.Hash(buf[8:])
	buf[0], buf[1], buf[2], buf[3] = byte(h>>56), byte(h>>48), byte(h>>40), byte(h>>32)
	buf[4], buf[5], buf[6], buf[7] = byte(h>>24), byte(h>>16), byte(h>>8), byte(h)
	return buf, h
}

// retryable reports whether an error means "try again, perhaps elsewhere or
// with a newer hash space".
func retryable(err error) bool {
	var re *rpc.Error
	if errors.As(err, &re) {
		return re.Code != rpc.CodeProtocol
	}
	return true // transport errors, timeouts, peer down
}

// backoff sleeps before the n-th retry, or returns false when the deadline
// or the context does not allow another attempt.
func (g *Gateway) backoff(ctx context.Context, n int, deadline time.Time) bool {
	d := time.Duration(10<<min(n, 3)) * time.Millisecond // 10 ms to 80 ms: a kill heals in ~2 s; do not oversleep it
	if time.Now().Add(d).After(deadline) {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-g.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// read sends a read to an active owner of h in the read hash space, trying
// the next owners on failure and retrying with fresh hash spaces until the
// retry timeout. handle gets the result bytes, valid only during the call.
func (g *Gateway) read(ctx context.Context, h uint64, method uint32, args func([]byte) []byte, handle func([]byte) error) error {
	deadline := time.Now().Add(g.cfg.RetryTimeout)
	var last error = ErrNoServer
	for attempt := 0; ; attempt++ {
		o := g.rhs.Load().Owners(h)
		first := g.firstRead(o, false)
		for k := -1; k < o.Len(); k++ {
			i := k
			if k < 0 {
				i = first
			} else if k == first {
				continue
			}
			if i < 0 {
				continue
			}
			n := o.At(i)
			if !n.Active {
				continue
			}
			c := g.server(n.Addr)
			if c == nil {
				return ErrUnavailable
			}
			res, err := c.Call(ctx, method, args)
			if err == nil {
				err = handle(res.Bytes())
				res.Release()
				return err
			}
			g.m.rpcErrs.Count(rpc.ErrorKind(err))
			last = err
			if !retryable(err) {
				return err
			}
		}
		g.requestRefresh()
		g.m.retries.Inc()
		if !g.backoff(ctx, attempt, deadline) {
			g.log.Debugf("read failed: %v", last)
			return last
		}
	}
}

// firstRead returns the index in o of the owner a read tries first: the
// first active owner, or -1 if none is active. With anyOwner (a read whose
// CAS unique the client does not see), the local server of an embedded
// gateway instead, if it is an active owner: every active owner in the
// read hash space holds every acknowledged write, so any of them may
// answer, and the local one costs no network.
//
// A read whose CAS unique the client sees goes to the first active owner,
// where a cas is decided: while two direct sets stamped with the same
// clock race (see setDirect), another owner may for a moment hold a
// different value under that CAS unique, and a cas with it would replace
// a value the client never saw.
func (g *Gateway) firstRead(o ring.Owners, anyOwner bool) int {
	first := -1
	for i := 0; i < o.Len(); i++ {
		n := o.At(i)
		if !n.Active {
			continue
		}
		if anyOwner && g.cfg.DialLocal != nil && n.Addr == g.cfg.Local {
			return i
		}
		if first < 0 {
			if !anyOwner || g.cfg.DialLocal == nil {
				return i
			}
			first = i
		}
	}
	return first
}

// maybeApplied reports whether a failed write attempt may nevertheless have
// taken effect: the request was sent and the answer lost (timeout, closed
// connection), or the coordinator stored it but could not reach a replica.
func maybeApplied(err error) bool {
	var re *rpc.Error
	if errors.As(err, &re) {
		return re.Msg == wire.MsgReplication || re.Msg == wire.MsgRelayLost
	}
	return errors.Is(err, rpc.ErrTimeout) || errors.Is(err, rpc.ErrConnLost)
}

// write sends a write to the coordinator of h in the write hash space,
// retrying with fresh hash spaces until the retry timeout. It reports
// whether an earlier, failed attempt may have taken effect, so that callers
// can read a retry's "not found"/"exists" answer in that light; a write
// given up after such an attempt fails with ErrMaybeApplied.
//
// Every write may be sent again after an attempt that may have taken
// effect: sets, deletes and touches do no harm twice, and the writes that
// would (incr, decr, append, prepend, lease changes) carry a request id
// that the servers deduplicate.
func (g *Gateway) write(ctx context.Context, h uint64, method uint32, args func([]byte) []byte, handle func([]byte) error) (ambiguous bool, err error) {
	deadline := time.Now().Add(g.cfg.RetryTimeout)
	var last error = ErrNoServer
	var full time.Time // when a coordinator first answered that its disk is full
	for attempt := 0; ; attempt++ {
		n, ok := g.whs.Load().Owners(h).Coordinator()
		if (!full.IsZero() && time.Since(full) > diskFullWait) || (!ok && g.recentlyFull()) {
			// The full owner was not replaced in time, or no owner is
			// left while disks are full: answer as memcached does when it
			// has no memory, rather than after the whole retry timeout.
			if last == nil || errors.Is(last, ErrNoServer) {
				last = errors.New(wire.MsgDiskFull)
			}
			return ambiguous, fmt.Errorf("%w (%v)", memcache.ErrNoMemory, last)
		}
		if ok {
			c := g.server(n.Addr)
			if c == nil {
				return ambiguous, ErrUnavailable
			}
			cctx, cancel := context.WithTimeout(ctx, g.cfg.WriteTimeout)
			res, err := c.Call(cctx, method, args)
			if errors.Is(err, rpc.ErrPeerDown) {
				// We cannot reach the coordinator; perhaps another owner
				// can (a partition between us and it alone).
				if rc := g.relayVia(h, n.Addr); rc != nil {
					g.m.relays.Inc()
					res, err = rc.Call(cctx, wire.SrvRelay, func(b []byte) []byte {
						b = msgpack.AppendArrayHeader(b, 3)
						b = msgpack.AppendUint(b, uint64(method))
						b = msgpack.AppendUint(b, h)
						return args(b)
					})
				}
			}
			cancel()
			if err == nil {
				err = handle(res.Bytes())
				res.Release()
				return ambiguous, err
			}
			g.m.rpcErrs.Count(rpc.ErrorKind(err))
			g.log.Debugf("write attempt %d to %s: %v", attempt, n.Addr, err)
			last = err
			if isDiskFull(err) {
				if full.IsZero() {
					full = time.Now()
				}
				g.diskFullAt.Store(time.Now().UnixNano())
			}
			if maybeApplied(err) {
				ambiguous = true
			}
			if !retryable(err) {
				return ambiguous, err
			}
		}
		g.requestRefresh()
		g.m.retries.Inc()
		if !g.backoff(ctx, attempt, deadline) {
			g.log.Debugf("write failed: %v", last)
			if ambiguous {
				return true, fmt.Errorf("%w: %w", ErrMaybeApplied, last)
			}
			return false, last
		}
	}
}

// diskFullWait is how long a write keeps trying after a coordinator said
// its disk is full: time for it to tell the managers (in its next
// keepalive) and for the hash space that marks it fault to arrive.
var diskFullWait = 3 * time.Second

// recentlyFull reports whether a coordinator answered that its disk was
// full within the last diskFullMemory: servers marked fault for a full disk
// stay so until an operator makes room and attaches them.
func (g *Gateway) recentlyFull() bool {
	at := g.diskFullAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < diskFullMemory
}

// diskFullMemory is how long after a disk-full answer a write that finds
// no owner at all fails at once (see write).
const diskFullMemory = time.Minute

// isDiskFull reports whether err is a server's answer that its store has
// no room.
func isDiskFull(err error) bool {
	var re *rpc.Error
	return errors.As(err, &re) && re.Msg == wire.MsgDiskFull
}

// relayVia returns a connected client of another active owner of h in the
// write hash space than the coordinator co, or nil if there is none.
func (g *Gateway) relayVia(h uint64, co ring.Addr) *rpc.Client {
	o := g.whs.Load().Owners(h)
	for i := 0; i < o.Len(); i++ {
		n := o.At(i)
		if !n.Active || n.Addr == co {
			continue
		}
		if c := g.server(n.Addr); c != nil && c.Conn() != nil {
			return c
		}
	}
	return nil
}

func exptime32(e int64) uint32 {
	switch {
	case e <= 0:
		return 0
	case e > 0xffffffff:
		return 0xffffffff
	}
	return uint32(e)
}

func expiredAt(exptime uint32, now int64) bool {
	return exptime != 0 && int64(exptime) <= now
}

// itemOf decodes a DBValue into it, it.Value aliasing raw. A tombstone,
// and an item expired at unix time now (0: expiry not judged), is
// ErrNotFound.
func itemOf(raw []byte, it *memcache.Item, now int64) error {
	v, err := wire.ParseDBValue(raw)
	if err != nil {
		return ErrBadReply
	}
	return valueItem(&v, it, now)
}

// valueItem sets *it from v and returns nil, or returns memcache.ErrNotFound
// for a nil v, a tombstone, or (if now is not 0) a value expired at now.
// it.Value aliases v.Data.
func valueItem(v *wire.Value, it *memcache.Item, now int64) error {
	if v == nil || v.Tombstone || (now != 0 && expiredAt(v.Exptime, now)) {
		return memcache.ErrNotFound
	}
	*it = memcache.Item{Value: v.Data, Flags: v.Flags, Exptime: int64(v.Exptime), CAS: v.CAS(),
		Stale: v.Stale, TokenSent: v.TokenSent}
	return nil
}

// getResult decodes a Get result (nil, or the raw DBValue) with itemOf,
// judging expiry now; it.Value aliases res.
func getResult(res []byte, it *memcache.Item) error {
	if msgpack.IsNil(res) {
		return memcache.ErrNotFound
	}
	raw, _, err := msgpack.ReadRaw(res)
	if err != nil {
		return ErrBadReply
	}
	return itemOf(raw, it, time.Now().Unix())
}

// doGet is the body of Get.
func (g *Gateway) doGet(ctx context.Context, key []byte, dst []byte, it *memcache.Item) error {
	var kb [maxKey]byte
	dbkey, h := g.dbKey(kb[:0], key)
	if _, local := g.readConn(h, false); local {
		var err error
		if g.cfg.ReadLocal(dbkey, func(v *wire.Value) {
			if err = valueItem(v, it, time.Now().Unix()); err == nil {
				it.Value = append(dst[:0], it.Value...)
			}
		}) == nil {
			return err
		}
	}
	return g.read(ctx, h, wire.SrvGet, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendRaw(b, dbkey)
	}, func(res []byte) error {
		err := getResult(res, it)
		if err == nil {
			it.Value = append(dst[:0], it.Value...) // res is reused after the call
		}
		return err
	})
}

// statusResult reads [status, ...] and returns the status and the rest.
func statusResult(res []byte) (int, []byte, error) {
	n, p, err := msgpack.ReadArrayHeader(res)
	if err != nil || n < 1 {
		return 0, nil, ErrBadReply
	}
	st, p, err := msgpack.ReadUint(p)
	if err != nil {
		return 0, nil, ErrBadReply
	}
	return int(st), p, nil
}

func statusError(st int) error {
	switch st {
	case wire.StatusOK:
		return nil
	case wire.StatusNotStored:
		return memcache.ErrNotStored
	case wire.StatusExists:
		return memcache.ErrExists
	case wire.StatusNotFound:
		return memcache.ErrNotFound
	case wire.StatusNonNumeric:
		return memcache.ErrNonNumeric
	}
	return errors.New("gateway: unknown status " + strconv.Itoa(st))
}

var modes = [...]uint64{
	memcache.ModeSet:     wire.OpSet,
	memcache.ModeAdd:     wire.OpAdd,
	memcache.ModeReplace: wire.OpReplace,
	memcache.ModeAppend:  wire.OpAppend,
	memcache.ModePrepend: wire.OpPrepend,
	memcache.ModeCAS:     wire.OpCAS,
}

// itemLimit is the item size limit the servers apply to appends and
// prepends (the memcached front end's -I).
func (g *Gateway) itemLimit() uint64 {
	if g.cfg.MaxItemSize > 0 {
		return uint64(g.cfg.MaxItemSize)
	}
	return memcache.DefaultMaxItemSize
}

// doStore is the body of Store.
func (g *Gateway) doStore(ctx context.Context, mode memcache.StoreMode, it *memcache.Item) (uint64, error) {
	// Every store but a plain set carries a request id and may be sent
	// again after an attempt that may have been applied (see arith): an
	// append or prepend must not apply twice, and an add, replace or cas
	// whose first attempt stored the item must not be answered NOT_STORED
	// or EXISTS by its retry, which would find that very item.
	var id uint64
	if mode != memcache.ModeSet {
		id = g.nextReqID()
	}
	return g.store(ctx, mode, it, id)
}

// store sends it with mode to the key's coordinator, with request id id
// if not 0.
func (g *Gateway) store(ctx context.Context, mode memcache.StoreMode, it *memcache.Item, id uint64) (uint64, error) {
	if int(mode) >= len(modes) {
		return 0, errors.New("gateway: unknown store mode")
	}
	var kb [maxKey]byte
	dbkey, h := g.dbKey(kb[:0], it.Key)
	// The lease bits ask for mg N's token (add) and ms I's stale store
	// (cas); the server ignores them for the other modes.
	// The clock field carries the gateway's clock: the coordinator merges
	// it, so its stamp is above every direct set this gateway sent (one
	// that comes back here after some owners refused it, or that is still
	// on its way to one, must lose to the writes after it).
	v := wire.Value{Clock: g.clk.Current(), Flags: it.Flags, Exptime: exptime32(it.Exptime), Data: it.Value,
		TokenSent: it.TokenSent && mode == memcache.ModeAdd, Stale: it.Stale && mode == memcache.ModeCAS}
	op := modes[mode]
	var cas uint64
	_, err := g.write(ctx, h, wire.SrvStore, func(b []byte) []byte {
		if id != 0 {
			b = msgpack.AppendArrayHeader(b, 6)
		} else {
			b = msgpack.AppendArrayHeader(b, 4)
		}
		b = msgpack.AppendUint(b, op)
		b = msgpack.AppendRaw(b, dbkey)
		b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
		b = wire.AppendDBValue(b, &v)
		b = msgpack.AppendUint(b, it.CAS)
		if id != 0 { // the limit applies to appends and prepends
			b = msgpack.AppendUint(b, id)
			b = msgpack.AppendUint(b, g.itemLimit())
		}
		return b
	}, func(res []byte) error {
		st, p, err := statusResult(res)
		if err != nil {
			return err
		}
		if st == wire.StatusOK {
			cas, _, _ = msgpack.ReadUint(p)
		}
		return statusError(st)
	})
	return cas, err
}

// doDelete is the body of Delete.
func (g *Gateway) doDelete(ctx context.Context, key []byte, cas uint64) error {
	var kb [maxKey]byte
	dbkey, h := g.dbKey(kb[:0], key)
	return g.remove(ctx, dbkey, h, cas, g.nextReqID())
}

// remove deletes dbkey with request id id. A retry after an attempt that
// may have been applied carries the same id, so the coordinator (or the
// next one) that already deleted the key answers with that outcome, and a
// retry that finds no key means there was none (servers upgraded before
// gateways: an older server ignores the id).
func (g *Gateway) remove(ctx context.Context, dbkey []byte, h, cas, id uint64) error {
	_, err := g.write(ctx, h, wire.SrvRemove, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendRaw(b, dbkey)
		b = msgpack.AppendUint(b, cas)
		return msgpack.AppendUint(b, id)
	}, func(res []byte) error {
		st, _, err := statusResult(res)
		if err != nil {
			return err
		}
		return statusError(st)
	})
	return err
}

// doArith is the body of Incr and Arith.
func (g *Gateway) doArith(ctx context.Context, key []byte, a *memcache.Arith, r *memcache.ArithResult) error {
	var kb [maxKey]byte
	dbkey, h := g.dbKey(kb[:0], key)
	var initial uint64
	var exp uint32
	if a.Create != nil {
		if v, err := strconv.ParseUint(string(a.Create.Value), 10, 64); err == nil {
			initial = v
		}
		exp = exptime32(a.Create.Exptime)
	}
	return g.arith(ctx, dbkey, h, a, initial, exp, g.nextReqID(), r)
}

// arith sends Arith a on dbkey with request id id. It is retried after an
// attempt that may have been applied, with the same id: the coordinator
// (or the next one) that already applied it answers with the first
// outcome (servers upgraded before gateways: an older server ignores the
// id and would count twice).
func (g *Gateway) arith(ctx context.Context, dbkey []byte, h uint64, a *memcache.Arith, initial uint64, exp uint32, id uint64, r *memcache.ArithResult) error {
	*r = memcache.ArithResult{}
	_, err := g.write(ctx, h, wire.SrvArith, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 10)
		b = msgpack.AppendRaw(b, dbkey)
		b = msgpack.AppendUint(b, a.Delta)
		b = msgpack.AppendBool(b, a.Decr)
		b = msgpack.AppendBool(b, a.Create != nil)
		b = msgpack.AppendUint(b, initial)
		b = msgpack.AppendUint(b, uint64(exp))
		b = msgpack.AppendUint(b, a.CAS)
		b = msgpack.AppendBool(b, a.Touch)
		b = msgpack.AppendUint(b, uint64(exptime32(a.Exptime)))
		return msgpack.AppendUint(b, id)
	}, func(res []byte) error {
		return arithResult(res, a, initial, r)
	})
	return err
}

// arithResult decodes an Arith reply [status, value, clocktime, created,
// old_exptime] into r. A server older than the last two fields leaves
// Created to a guess (a create was asked for and the value is the initial
// one) and OldExptime 0.
func arithResult(res []byte, a *memcache.Arith, initial uint64, r *memcache.ArithResult) error {
	n, p, err := msgpack.ReadArrayHeader(res)
	if err != nil || n < 1 {
		return ErrBadReply
	}
	st, p, err := msgpack.ReadUint(p)
	if err != nil {
		return ErrBadReply
	}
	if st != wire.StatusOK {
		return statusError(int(st))
	}
	if n < 3 {
		return ErrBadReply
	}
	if r.Value, p, err = msgpack.ReadUint(p); err != nil {
		return ErrBadReply
	}
	if r.CAS, p, err = msgpack.ReadUint(p); err != nil {
		return ErrBadReply
	}
	if n < 5 {
		r.Created = a.Create != nil && r.Value == initial
		return nil
	}
	if r.Created, p, err = msgpack.ReadBool(p); err != nil {
		return ErrBadReply
	}
	e, _, err := msgpack.ReadUint(p)
	if err != nil {
		return ErrBadReply
	}
	r.OldExptime = int64(e)
	return nil
}

// doTouch is the body of Touch.
func (g *Gateway) doTouch(ctx context.Context, key []byte, exptime int64) error {
	return g.touch(ctx, key, exptime, nil, nil)
}

// doGetAndTouch is the body of GetAndTouch.
func (g *Gateway) doGetAndTouch(ctx context.Context, key []byte, exptime int64, dst []byte, it *memcache.Item) error {
	return g.touch(ctx, key, exptime, dst, it)
}

// touch sends a touch (it nil) or gat of key with exptime to the key's
// coordinator. A touch sent again after an attempt that may have taken
// effect does no harm, except that one with an exptime already past finds
// no item if the first attempt expired it: that NOT_FOUND is the first
// attempt's success (the same rule as memcache's touchAgain for windowed
// touches). A gat in that case misses, as the item it would have returned
// is gone.
func (g *Gateway) touch(ctx context.Context, key []byte, exptime int64, dst []byte, it *memcache.Item) error {
	var kb [maxKey]byte
	dbkey, h := g.dbKey(kb[:0], key)
	want := it != nil
	ambiguous, err := g.write(ctx, h, wire.SrvTouch, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendRaw(b, dbkey)
		b = msgpack.AppendUint(b, uint64(exptime32(exptime)))
		return msgpack.AppendBool(b, want)
	}, func(res []byte) error {
		st, p, err := statusResult(res)
		if err != nil {
			return err
		}
		if st != wire.StatusOK || !want {
			return statusError(st)
		}
		raw, _, err := msgpack.ReadRaw(p)
		if err != nil {
			return ErrBadReply
		}
		// The item existed when it was touched: gat returns it even when
		// its new exptime is already past (gat -1), as memcached does.
		if err := itemOf(raw, it, 0); err != nil {
			return err
		}
		it.Value = append(dst[:0], it.Value...)
		return nil
	})
	if ambiguous && !want && errors.Is(err, memcache.ErrNotFound) && exptime != 0 && exptime <= time.Now().Unix() {
		return nil
	}
	return err
}

// Stats implements memcache.Backend with cluster-wide data figures.
func (g *Gateway) Stats(ctx context.Context, add func(name, value string)) error {
	var items, bytes uint64
	srv := g.activeServers()
	for _, a := range srv {
		c := g.server(a)
		if c == nil {
			continue
		}
		// Items are the records that are not tombstones (deleted or
		// flushed keys); a server older than that count answers nil to
		// StatDBLive, and its record count stands in.
		haveLive := false
		for _, code := range []uint64{wire.StatDBLive, wire.StatDBItems, wire.StatDBBytes} {
			if code == wire.StatDBItems && haveLive {
				continue
			}
			res, err := c.Call(ctx, wire.SrvGetStatus, func(b []byte) []byte {
				b = msgpack.AppendArrayHeader(b, 1)
				return msgpack.AppendUint(b, code)
			})
			if err != nil {
				continue
			}
			v, _, verr := msgpack.ReadUint(res.Bytes())
			res.Release()
			switch code {
			case wire.StatDBLive:
				if verr == nil {
					items += v
					haveLive = true
				}
			case wire.StatDBItems:
				items += v
			default:
				bytes += v
			}
		}
	}
	copies := uint64(min(len(srv), ring.Replicas))
	if copies > 0 {
		items /= copies
		bytes /= copies
	}
	add("curr_items", strconv.FormatUint(items, 10))
	// Items stored through this gateway since it started (memcached's
	// counts the items its own stores linked; stats reset does not clear
	// this one, a metric too).
	add("total_items", strconv.FormatUint(g.m.total[cmdStore][resOK].Value(), 10))
	add("bytes", strconv.FormatUint(bytes, 10))
	add("kumo_servers", strconv.Itoa(len(srv)))
	return nil
}

// Get implements memcache.Backend.
func (g *Gateway) Get(ctx context.Context, key []byte, dst []byte, it *memcache.Item) error {
	start := time.Now()
	err := g.doGet(ctx, key, dst, it)
	g.observe(cmdGet, start, err)
	return err
}

// GetAndTouch implements memcache.Backend.
func (g *Gateway) GetAndTouch(ctx context.Context, key []byte, exptime int64, dst []byte, it *memcache.Item) error {
	start := time.Now()
	err := g.doGetAndTouch(ctx, key, exptime, dst, it)
	g.observe(cmdTouch, start, err)
	return err
}

// Store implements memcache.Backend.
func (g *Gateway) Store(ctx context.Context, mode memcache.StoreMode, it *memcache.Item) (uint64, error) {
	start := time.Now()
	cas, err := g.doStore(ctx, mode, it)
	g.observe(cmdStore, start, err)
	return cas, err
}

// Delete implements memcache.Backend.
func (g *Gateway) Delete(ctx context.Context, key []byte, cas uint64) error {
	start := time.Now()
	err := g.doDelete(ctx, key, cas)
	g.observe(cmdDelete, start, err)
	return err
}

// Incr implements memcache.Backend.
func (g *Gateway) Incr(ctx context.Context, key []byte, delta uint64, decr bool, create *memcache.Item) (uint64, uint64, error) {
	start := time.Now()
	var r memcache.ArithResult
	err := g.doArith(ctx, key, &memcache.Arith{Delta: delta, Decr: decr, Create: create}, &r)
	g.observe(cmdIncr, start, err)
	return r.Value, r.CAS, err
}

// Arith implements memcache.ArithBackend.
func (g *Gateway) Arith(ctx context.Context, key []byte, a *memcache.Arith, r *memcache.ArithResult) error {
	start := time.Now()
	err := g.doArith(ctx, key, a, r)
	g.observe(cmdIncr, start, err)
	return err
}

// Touch implements memcache.Backend.
func (g *Gateway) Touch(ctx context.Context, key []byte, exptime int64) error {
	start := time.Now()
	err := g.doTouch(ctx, key, exptime)
	g.observe(cmdTouch, start, err)
	return err
}

// FlushAll implements memcache.Backend.
func (g *Gateway) FlushAll(ctx context.Context, delay int64) error {
	start := time.Now()
	err := g.doFlushAll(ctx, delay)
	g.observe(cmdFlush, start, err)
	return err
}
