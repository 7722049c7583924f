package benchload

import (
	"bufio"
	"context"
	"errors"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// preloadDepth is the pipeline depth of the preload.
const preloadDepth = 64

// errProto means a reply broke the protocol; the connection is dropped.
var errProto = errors.New("benchload: protocol error")

// request is one request of a batch. Its keys are rkeys[off:off+n] (and
// their acknowledged versions when sent, rlo[off:off+n]).
type request struct {
	get bool
	n   int
	off int
	ver uint32 // version written by a set under Verify
}

// worker is one connection and its closed loop. Only its own goroutine
// touches its fields, except ops and errs (read by Run's progress goroutine)
// and nc (closed by abort). worker.mu and shared.mu are never held together.
type worker struct {
	sh   *shared
	cfg  *Config
	id   int
	rng  *mrand.Rand
	zipf *mrand.Zipf

	mu sync.Mutex // protects nc and closed
	nc net.Conn
	// closed is set by close and abort; a closed worker does not redial.
	closed bool

	r *bufio.Reader
	w *bufio.Writer

	keyBuf  []byte // prefix + keyDigits digits
	setTail []byte // " 0 0 SIZE\r\n"
	val     []byte // value to set (constant filler without Verify)
	scratch []byte // expected value under Verify
	rbuf    []byte // reply value bytes
	hdr     [binHeaderLen]byte
	reqs    []request
	rkeys   []int32
	rlo     []uint32

	quota int64 // requests left when Config.Ops is set

	ops, errs                atomic.Uint64
	gets, sets, hits, misses uint64
	wrong, reconnects        uint64
	preloaded                uint64
	hist                     Histogram
}

func newWorker(sh *shared, id int, seed uint64) *worker {
	cfg := sh.cfg
	w := &worker{sh: sh, cfg: cfg, id: id, rng: newRand(seed, id)}
	if cfg.Zipf > 1 {
		w.zipf = mrand.NewZipf(w.rng, cfg.Zipf, 1, uint64(cfg.Keys-1))
	}
	w.keyBuf = make([]byte, len(cfg.KeyPrefix)+keyDigits)
	copy(w.keyBuf, cfg.KeyPrefix)
	w.setTail = append([]byte(" 0 0 "), strconv.Itoa(cfg.ValueSize)...)
	w.setTail = append(w.setTail, '\r', '\n')
	w.val = make([]byte, cfg.ValueSize)
	for i := range w.val {
		w.val[i] = 'x'
	}
	w.scratch = make([]byte, cfg.ValueSize)
	w.rbuf = make([]byte, cfg.ValueSize+64)
	depth := max(cfg.Pipeline, preloadDepth)
	w.reqs = make([]request, depth)
	w.rkeys = make([]int32, depth*cfg.MultiGet)
	w.rlo = make([]uint32, depth*cfg.MultiGet)
	return w
}

// attach makes nc the worker's connection.
func (w *worker) attach(nc net.Conn) {
	w.mu.Lock()
	w.nc = nc
	w.mu.Unlock()
	if w.r == nil {
		w.r = bufio.NewReaderSize(nc, 64<<10)
		w.w = bufio.NewWriterSize(nc, 64<<10)
	} else {
		w.r.Reset(nc)
		w.w.Reset(nc)
	}
}

// drop closes the connection after a broken reply.
func (w *worker) drop() {
	w.mu.Lock()
	if w.nc != nil {
		w.nc.Close()
		w.nc = nil
	}
	w.mu.Unlock()
}

// close closes the connection for good.
func (w *worker) close() {
	w.mu.Lock()
	w.closed = true
	if w.nc != nil {
		w.nc.Close()
		w.nc = nil
	}
	w.mu.Unlock()
}

// abort closes the connection from another goroutine to unblock a read.
func (w *worker) abort() { w.close() }

// redial opens a new connection; it reports whether the worker has one.
// A failed dial waits a moment, so that a dead server costs a few dials a
// second, not a busy loop.
func (w *worker) redial() bool {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed || w.sh.stop.Load() {
		return false
	}
	w.reconnects++
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	nc, err := w.cfg.Dial(ctx, w.cfg.Addr)
	cancel()
	if err != nil {
		time.Sleep(100 * time.Millisecond) // back off before the next dial
		return false
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		nc.Close()
		return false
	}
	w.mu.Unlock()
	w.attach(nc)
	return true
}

// connected reports whether the worker has a connection.
func (w *worker) connected() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nc != nil
}

// pick returns a key index by the configured popularity.
func (w *worker) pick() int {
	if w.zipf != nil {
		return int(w.zipf.Uint64())
	}
	return w.rng.IntN(w.cfg.Keys)
}

// owned maps key index k to a key this connection writes under Verify (the
// keys i with i%Conns == id); it returns -1 when the connection owns none.
func (w *worker) owned(k int) int {
	c := w.cfg.Conns
	k = k - k%c + w.id
	if k >= w.cfg.Keys {
		k -= c
	}
	if k < 0 {
		return -1
	}
	return k
}

// key writes the key of index k into keyBuf and returns it; the slice is
// valid until the next call.
func (w *worker) key(k int) []byte {
	b := w.keyBuf
	n := uint32(k)
	for i := len(b) - 1; i >= len(b)-keyDigits; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// measure is the closed loop of the measurement.
func (w *worker) measure() {
	depth := w.cfg.Pipeline
	for !w.sh.stop.Load() {
		n := depth
		if w.cfg.Ops > 0 {
			if w.quota == 0 {
				return
			}
			n = int(min(int64(n), w.quota))
		}
		w.quota -= int64(n)
		if !w.connected() && !w.redial() {
			if !w.sh.stop.Load() {
				// No connection: the batch fails without being sent.
				w.errs.Add(uint64(n))
				w.ops.Add(uint64(n))
			}
			continue
		}
		for i := 0; i < n; i++ {
			w.writeRequest(&w.reqs[i], i)
		}
		w.runBatch(w.reqs[:n], true)
	}
}

// preload sets every key this connection owns (index%Conns == id) once.
func (w *worker) preload() {
	k := w.id
	for k < w.cfg.Keys && !w.sh.stop.Load() {
		if !w.connected() && !w.redial() {
			// No connection: these keys stay unset.
			for n := 0; n < preloadDepth && k < w.cfg.Keys; n++ {
				w.errs.Add(1)
				k += w.cfg.Conns
			}
			continue
		}
		n := 0
		for ; n < preloadDepth && k < w.cfg.Keys; n++ {
			w.writeSet(&w.reqs[n], n, k)
			k += w.cfg.Conns
		}
		w.runBatch(w.reqs[:n], false)
	}
	w.sets, w.hits, w.misses, w.wrong = 0, 0, 0, 0
	w.ops.Store(0)
	w.hist.Reset()
}

// runBatch flushes the written requests and reads their replies, recording
// latencies when timed. On a broken connection the unanswered requests count
// as errors, their sets become of unknown outcome, and the connection is
// dropped.
func (w *worker) runBatch(reqs []request, timed bool) {
	err := w.w.Flush()
	t0 := time.Now()
	i := 0
	if err == nil {
		for ; i < len(reqs); i++ {
			if err = w.readReply(&reqs[i]); err != nil {
				break
			}
			if timed {
				w.hist.Record(time.Since(t0))
			} else if !reqs[i].get {
				w.preloaded++
			}
		}
	}
	if err != nil {
		for j := i; j < len(reqs); j++ {
			w.unknown(&reqs[j])
		}
		w.errs.Add(uint64(len(reqs) - i))
		w.drop()
	}
	w.ops.Add(uint64(len(reqs)))
}

// writeRequest chooses and writes request i of a batch.
func (w *worker) writeRequest(rq *request, i int) {
	if w.rng.Float64() >= w.cfg.GetRatio {
		k := w.pick()
		if w.sh.ver != nil {
			k = w.owned(k)
		}
		if k >= 0 {
			w.writeSet(rq, i, k)
			return
		}
	}
	m := w.cfg.MultiGet
	*rq = request{get: true, n: m, off: i * m}
	for j := 0; j < m; j++ {
		k := w.pick()
		w.rkeys[rq.off+j] = int32(k)
		if w.sh.ver != nil {
			w.rlo[rq.off+j] = w.sh.ver.keys[k].acked.Load()
		}
	}
	w.gets++
	if w.cfg.Binary {
		w.writeBinGet(rq)
	} else {
		w.writeTextGet(rq)
	}
}

// writeSet writes a set of key k as request i of a batch.
func (w *worker) writeSet(rq *request, i, k int) {
	m := w.cfg.MultiGet
	*rq = request{n: 1, off: i * m}
	w.rkeys[rq.off] = int32(k)
	key := w.key(k)
	if v := w.sh.ver; v != nil {
		ks := &v.keys[k]
		rq.ver = ks.issued.Load() + 1
		ks.issued.Store(rq.ver)
		v.fill(w.val, key, k, rq.ver)
	}
	w.sets++
	if w.cfg.Binary {
		w.writeBinSet(key)
	} else {
		w.writeTextSet(key)
	}
}

// acked records the acknowledgement of a set.
func (w *worker) acked(rq *request) {
	if v := w.sh.ver; v != nil {
		v.keys[w.rkeys[rq.off]].acked.Store(rq.ver)
	}
}

// unknown records a request whose outcome is unknown (no reply, or an error
// reply to a set).
func (w *worker) unknown(rq *request) {
	if v := w.sh.ver; v != nil && !rq.get {
		v.keys[w.rkeys[rq.off]].addMaybe(rq.ver)
	}
}

// failed counts an error reply that kept the stream in sync.
func (w *worker) failed(rq *request) {
	w.errs.Add(1)
	w.unknown(rq)
}

// got handles key j of a get: a hit with value val, or a miss.
func (w *worker) got(rq *request, j int, hit bool, val []byte) {
	if hit {
		w.hits++
	} else {
		w.misses++
	}
	v := w.sh.ver
	if v == nil {
		return
	}
	k := int(w.rkeys[rq.off+j])
	key := w.key(k)
	if kind := v.check(key, k, hit, val, w.rlo[rq.off+j], w.scratch); kind != "" {
		w.wrong++
		detail := " (acked " + strconv.FormatUint(uint64(w.rlo[rq.off+j]), 10) + ")"
		if hit && len(val) >= versionOff+versionLen {
			detail += " got " + strconv.Quote(string(val[:versionOff+versionLen]))
		}
		w.sh.wrong(kind, key, detail)
	}
}

// readReply reads the reply of rq. A non-nil error means the connection is
// out of step and must be dropped.
func (w *worker) readReply(rq *request) error {
	switch {
	case w.cfg.Binary && rq.get:
		return w.readBinGet(rq)
	case w.cfg.Binary:
		return w.readBinSet(rq)
	case rq.get:
		return w.readTextGet(rq)
	default:
		return w.readTextSet(rq)
	}
}

// grow returns w.rbuf with at least n bytes.
func (w *worker) grow(n int) []byte {
	if cap(w.rbuf) < n {
		w.rbuf = make([]byte, n)
	}
	return w.rbuf[:n]
}
