package memcache

import (
	"bytes"
	"errors"
)

// Pipelined windows. A text client that pipelines single-key gets, plain
// sets, adds, replaces, appends, prepends, deletes, touches, incrs and
// decrs (a bulk load of
// "set ... noreply", a load generator's -P, pymemcache's adds and touches,
// noreply by default, counters bumped with noreply) is
// served a window at a time: the request at hand and those that directly
// follow it in the buffer, up to the window's size, start together (the
// gets with one MultiBatch.GetMulti when the backend has it, the sets with
// SetAsync, the other stores but cas with AsyncStorer.StoreAsync, deletes with
// AsyncDeleter.DeleteAsync, touches with AsyncToucher.TouchAsync, incr and
// decr with AsyncIncrer.IncrAsync), and the
// replies are written in request order once all are
// done. Served one by one, every set would wait for its replication round
// trip before the next request was even read.
//
// A window holds only requests whose effects cannot depend on their order:
// the key of a set appears nowhere else in the window, so no get in it can
// see (or miss) a set that comes before or after it, and two sets never
// race. Anything else (another command, a set whose data has not all
// arrived, a second request for a set's key) ends the window and is served
// the ordinary way after it. A get or set that fails is served again with
// the blocking Backend methods, in its place.

// winSet is a set, add, replace, append or prepend held in a window, or a
// delete, touch, incr or decr (see getMany.isDel, isTouch and isIncr; a
// touch's exptime is in it.Exptime).
type winSet struct {
	it    Item // Key and Value point into the input until the window is written
	mode  StoreMode
	delta uint64 // incr, decr
	decr  bool
	// Incrs of one key in a window go out as one, their deltas summed, on
	// the first (the group's leader), and each gets the value it would
	// have had in turn: total is the leader's sum, rem what the leader
	// has not yet handed out of it while replying, and follow is
	// 1 + the leader's index for the others (0 for a leader or any other
	// request).
	total, rem uint64
	follow     int
	noreply    bool
	err        error  // its outcome; errNotStarted if SetAsync declined
	cas        uint64 // the stored item's CAS unique, or an incr's value, if err is nil
}

// The kinds of request that start a window.
const (
	winGet    = iota // a get of one key
	winStore         // a set, add or replace (first's mode)
	winDelete        // a delete
	winTouch         // a touch (first's it.Exptime)
	winIncr          // an incr or decr (first's delta and decr)
)

// pipelined serves a window that starts with the request of kind on key:
// a get, or the write in first (whose it.Key is key; the caller has
// counted it in the stats).
func (c *conn) pipelined(key []byte, withCAS bool, kind int, first winSet) {
	m := c.window()
	defer m.release()
	st := &c.s.st
	m.keys[0] = key
	first.noreply = c.noreply
	switch kind {
	case winStore:
		m.isSet[0], m.sets[0] = true, first
	case winDelete:
		m.isSet[0], m.isDel[0], m.sets[0] = true, true, winSet{it: Item{Key: key}, noreply: c.noreply}
	case winTouch:
		m.isSet[0], m.isTouch[0], m.sets[0] = true, true, first
	case winIncr:
		first.total = first.delta
		m.isSet[0], m.isIncr[0], m.sets[0] = true, true, first
	default:
		m.withCAS[0] = withCAS
	}
	n := 1
	// Peek and Discard do not move the buffered bytes, so the keys and
	// values taken below stay valid until the next read from c.br.
	buf, _ := c.br.Peek(c.br.Buffered())
	used := 0
	for size := c.windowSize(m); n < size; {
		i := bytes.IndexByte(buf[used:], '\n')
		if i < 0 {
			break
		}
		line := trimEOL(buf[used : used+i+1])
		if bytes.IndexByte(line, 0) >= 0 {
			break // a NUL ends the line (see serveText): served the ordinary way
		}
		if k, wc, ok := singleGet(line); ok {
			if m.setHas(k, n) {
				break
			}
			m.keys[n], m.withCAS[n] = k, wc
			st.cmdGet.Add(1)
			n++
			used += i + 1
			continue
		}
		if k, noreply, ok := windowDelete(line); ok {
			if m.has(k, n) {
				break
			}
			m.keys[n], m.isSet[n], m.isDel[n] = k, true, true
			m.sets[n] = winSet{it: Item{Key: k}, noreply: noreply}
			n++
			used += i + 1
			continue
		}
		if k, exp, noreply, ok := c.windowTouch(line); ok {
			if m.has(k, n) {
				break
			}
			m.keys[n], m.isSet[n], m.isTouch[n] = k, true, true
			m.sets[n] = winSet{it: Item{Key: k, Exptime: exp}, noreply: noreply}
			st.cmdTouch.Add(1)
			n++
			used += i + 1
			continue
		}
		if ws, ok := windowIncr(line); ok {
			if j := m.incrLeader(ws.it.Key, n); j >= 0 && !ws.decr {
				ws.follow = j + 1 // joins the incrs of its key
				m.sets[j].total += ws.delta
			} else if m.has(ws.it.Key, n) {
				break
			}
			m.keys[n], m.isSet[n], m.isIncr[n], m.sets[n] = ws.it.Key, true, true, ws
			n++
			used += i + 1
			continue
		}
		ws, vlen, ok := c.windowSet(line)
		if !ok {
			break
		}
		data := used + i + 1
		if data+vlen+2 > len(buf) || buf[data+vlen] != '\r' || buf[data+vlen+1] != '\n' || m.has(ws.it.Key, n) {
			break // not all here, a bad data chunk, or its key is taken
		}
		ws.it.Value = buf[data : data+vlen : data+vlen]
		m.keys[n], m.isSet[n], m.sets[n] = ws.it.Key, true, ws
		st.cmdSet.Add(1)
		c.s.detail.note(ws.it.Key, detailSet)
		n++
		used = data + vlen + 2
	}
	c.br.Discard(used)
	c.fetchWindow(m, n)
	m.adapt(n)
	for i := 0; i < n; i++ {
		s := &m.sets[i]
		c.noreply = m.isSet[i] && s.noreply // a get's SERVER_ERROR is never silenced
		if !m.isSet[i] {
			if c.writeSlot(m, i, m.withCAS[i]) {
				c.bw.WriteString("END\r\n")
			}
			continue
		}
		if m.isDel[i] {
			c.deleteReply(s.it.Key, c.deleteAgain(s.it.Key, s.err))
			continue
		}
		if m.isTouch[i] {
			c.touchReply(c.touchAgain(s))
			continue
		}
		if m.isIncr[i] {
			lead := s
			if s.follow != 0 {
				lead = &m.sets[s.follow-1]
			} else {
				s.cas, s.err = c.incrAgain(s)
				s.rem = s.total
			}
			// Its value in turn: the group's result less the deltas of
			// the incrs after it (mod 2^64, as incr wraps).
			lead.rem -= s.delta
			c.incrReply(s.decr, lead.cas-lead.rem, lead.err)
			continue
		}
		_, err := c.storeAgain(s)
		c.storeReply(err, false)
	}
	c.noreply = false
}

// incrLeader returns the index of the incr (not decr) that leads the
// incrs of key among the first n requests, if key's first request is one;
// else -1. (A later request for key is then one of its group: any other
// would have ended the window.)
func (m *getMany) incrLeader(key []byte, n int) int {
	for i := 0; i < n; i++ {
		if bytes.Equal(m.keys[i], key) {
			if m.isIncr[i] && !m.sets[i].decr && m.sets[i].follow == 0 {
				return i
			}
			return -1
		}
	}
	return -1
}

// has reports whether key is one of the first n keys of the window.
func (m *getMany) has(key []byte, n int) bool {
	for i := 0; i < n; i++ {
		if bytes.Equal(m.keys[i], key) {
			return true
		}
	}
	return false
}

// setHas reports whether key is the key of one of the first n requests
// that is a set.
func (m *getMany) setHas(key []byte, n int) bool {
	for i := 0; i < n; i++ {
		if m.isSet[i] && bytes.Equal(m.keys[i], key) {
			return true
		}
	}
	return false
}

// deleteAgain returns the outcome of the windowed delete of key that
// completed with err, serving it again with Backend.Delete unless err is
// nil or ErrNotFound.
func (c *conn) deleteAgain(key []byte, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	again := c.s.Backend.Delete(c.ctx, key, 0)
	if errors.Is(again, ErrNotFound) && errors.Is(err, ErrMaybeApplied) {
		return nil // the first attempt deleted it
	}
	return again
}

// touchAgain returns the outcome of the windowed touch s, serving it again
// with Backend.Touch unless it was touched or not found. A second touch
// does no harm where the first took effect; one that finds no item after a
// first attempt that may have expired it (ErrMaybeApplied, and an exptime
// already past) reports the first one's success. With a later exptime the
// first attempt cannot have removed the item: it was not there.
func (c *conn) touchAgain(s *winSet) error {
	if s.err == nil || errors.Is(s.err, ErrNotFound) {
		return s.err
	}
	again := c.s.Backend.Touch(c.ctx, s.it.Key, s.it.Exptime)
	if errors.Is(again, ErrNotFound) && errors.Is(s.err, ErrMaybeApplied) &&
		s.it.Exptime != 0 && s.it.Exptime <= c.s.now().Unix() {
		return nil
	}
	return again
}

// incrAgain returns the new value of the windowed incr or decr s, serving
// it again with Backend.Incr if it failed before it could have been
// applied. One that may have been applied is never sent again (a second
// increment would count twice): its error stands.
func (c *conn) incrAgain(s *winSet) (uint64, error) {
	if s.err == nil || errors.Is(s.err, ErrNotFound) || errors.Is(s.err, ErrNonNumeric) || errors.Is(s.err, ErrMaybeApplied) {
		return s.cas, s.err
	}
	v, _, err := c.s.Backend.Incr(c.ctx, s.it.Key, s.total, s.decr, nil)
	return v, err
}

// windowIncr parses line if it is an incr or decr a window may hold, "incr
// KEY DELTA" or "incr KEY DELTA noreply" with a valid delta (or decr).
func windowIncr(line []byte) (winSet, bool) {
	cmd, rest := nextToken(line)
	decr := string(cmd) == "decr"
	if !decr && string(cmd) != "incr" {
		return winSet{}, false
	}
	key, rest := nextToken(rest)
	d, rest := nextToken(rest)
	opt, rest := nextToken(rest)
	if more, _ := nextToken(rest); len(key) == 0 || len(key) > maxKeyLen || len(more) != 0 {
		return winSet{}, false
	}
	delta, ok := parseCUint(d)
	if !ok || len(opt) != 0 && string(opt) != "noreply" {
		return winSet{}, false
	}
	return winSet{it: Item{Key: key}, delta: delta, total: delta, decr: decr, noreply: len(opt) != 0}, true
}

// windowTouch parses line if it is a touch a window may hold, "touch KEY
// EXPTIME" or "touch KEY EXPTIME noreply" with a valid exptime, and
// returns the key and the normalised exptime.
func (c *conn) windowTouch(line []byte) (key []byte, exptime int64, noreply, ok bool) {
	cmd, rest := nextToken(line)
	if string(cmd) != "touch" {
		return nil, 0, false, false
	}
	key, rest = nextToken(rest)
	e, rest := nextToken(rest)
	opt, rest := nextToken(rest)
	if more, _ := nextToken(rest); len(key) == 0 || len(key) > maxKeyLen || len(more) != 0 {
		return nil, 0, false, false
	}
	exp, valid := parseCInt32(e)
	if !valid || len(opt) != 0 && string(opt) != "noreply" {
		return nil, 0, false, false
	}
	return key, c.s.normExptime(exp), len(opt) != 0, true
}

// windowDelete parses line if it is a delete a window may hold, "delete
// KEY" or "delete KEY noreply", and returns the key.
func windowDelete(line []byte) (key []byte, noreply, ok bool) {
	cmd, rest := nextToken(line)
	if string(cmd) != "delete" {
		return nil, false, false
	}
	key, rest = nextToken(rest)
	if len(key) == 0 || len(key) > maxKeyLen {
		return nil, false, false
	}
	opt, rest := nextToken(rest)
	if more, _ := nextToken(rest); len(more) != 0 {
		return nil, false, false
	}
	switch string(opt) {
	case "":
		return key, false, true
	case "noreply":
		return key, true, true
	}
	return nil, false, false
}

// storeAgain returns the outcome of the windowed store s (the stored
// item's CAS unique, if it succeeded, and the error), serving it again
// with Backend.Store unless it succeeded, its condition failed, or it is
// an append or prepend that may have been applied. An add whose first
// attempt may have stored the item (ErrMaybeApplied) and whose second
// finds one there reports the first one's success if that item is ours
// (same flags and value); an item someone stored before is NOT_STORED.
func (c *conn) storeAgain(s *winSet) (uint64, error) {
	if s.err == nil || errors.Is(s.err, ErrNotStored) {
		return s.cas, s.err
	}
	if (s.mode == ModeAppend || s.mode == ModePrepend) && errors.Is(s.err, ErrMaybeApplied) {
		return 0, s.err // a second attempt could append twice
	}
	cas, again := c.s.Backend.Store(c.ctx, s.mode, &s.it)
	if s.mode == ModeAdd && errors.Is(again, ErrNotStored) && errors.Is(s.err, ErrMaybeApplied) {
		var cur Item
		if c.s.Backend.Get(c.ctx, s.it.Key, nil, &cur) == nil && cur.Flags == s.it.Flags && bytes.Equal(cur.Value, s.it.Value) {
			return cur.CAS, nil
		}
	}
	return cas, again
}

// windowSet parses line if it is a set, add, replace, append or prepend a
// window may hold, in the form textStore accepts: "set KEY FLAGS EXPTIME
// BYTES [noreply]" (or add, replace, append, prepend), valid numbers, not too large. It returns the store
// (without its value) and the value's length.
func (c *conn) windowSet(line []byte) (winSet, int, bool) {
	var tok [6][]byte
	n := 0
	for r := line; ; {
		t, r2 := nextToken(r)
		if len(t) == 0 {
			break
		}
		if n == len(tok) {
			return winSet{}, 0, false
		}
		tok[n] = t
		n++
		r = r2
	}
	var mode StoreMode
	switch string(tok[0]) {
	case "set":
		mode = ModeSet
	case "add":
		mode = ModeAdd
	case "replace":
		mode = ModeReplace
	case "append":
		mode = ModeAppend
	case "prepend":
		mode = ModePrepend
	default:
		return winSet{}, 0, false
	}
	if n != 5 && n != 6 {
		return winSet{}, 0, false
	}
	key := tok[1]
	flags, ok1 := parseCUint(tok[2])
	exp, ok2 := parseCInt32(tok[3])
	vlen, ok3 := parseCInt32(tok[4])
	if len(key) > maxKeyLen || !ok1 || !ok2 || !ok3 || vlen < 0 || vlen > maxDataLen || c.tooLarge(key, vlen, uint32(flags)) {
		return winSet{}, 0, false
	}
	ws := winSet{
		it:      Item{Key: key, Flags: uint32(flags), Exptime: c.s.normExptime(exp)},
		mode:    mode,
		noreply: n == 6 && string(tok[5]) == "noreply",
	}
	return ws, int(vlen), true
}

// fetchWindow starts the window's first n requests (for a multi-key get,
// all gets) and waits until every started one completed; a request it could
// not start holds errNotStarted.
func (c *conn) fetchWindow(m *getMany, n int) {
	m.hi = max(m.hi, n)
	for i := 0; i < n; i++ {
		m.slots[i].err = errNotStarted // for a write: not a value, adapt skips it
		if m.isSet[i] {
			m.sets[i].err = errNotStarted
		}
	}
	gets := 0
	for i := 0; i < n; i++ {
		if !m.isSet[i] {
			gets++
		}
	}
	took := c.takeFetch(m, gets)
	defer c.giveFetch(took)
	m.left.Store(int32(n) + 1) // +1: ours, dropped once all are started
	// The gets without CAS, then those with (GetMulti takes one withCAS
	// for all its keys), from disjoint parts of gk and gd. No key of a get
	// is written in the same window, so their order does not matter.
	gk, gd := m.gk[:0], m.gd[:0]
	for i := 0; i < n; i++ {
		if !m.isSet[i] && !m.withCAS[i] {
			gk, gd = append(gk, m.keys[i]), append(gd, m.dones[i])
		}
	}
	c.getsStart(m, gk, gd, false)
	gk, gd = gk[len(gk):], gd[len(gd):]
	for i := 0; i < n; i++ {
		if !m.isSet[i] && m.withCAS[i] {
			gk, gd = append(gk, m.keys[i]), append(gd, m.dones[i])
		}
	}
	c.getsStart(m, gk, gd, true)
	for i := 0; i < n; i++ {
		if !m.isSet[i] {
			continue
		}
		var ok bool
		switch {
		case m.isDel[i]:
			ok = c.deleteStart(m, m.keys[i], m.delDones[i])
		case m.isTouch[i]:
			ok = c.touchStart(m, &m.sets[i], m.delDones[i])
		case m.isIncr[i] && m.sets[i].follow != 0:
			ok = false // served with its group's leader
		case m.isIncr[i]:
			ok = c.incrStart(m, &m.sets[i], m.setDones[i])
		case m.sets[i].mode != ModeSet:
			ok = c.storeStart(m, &m.sets[i], m.setDones[i])
		case m.batch != nil:
			ok = m.batch.SetAsync(&m.sets[i].it, m.setDones[i])
		default:
			ok = c.as.be.SetAsync(&m.sets[i].it, m.setDones[i])
		}
		if !ok {
			m.left.Add(-1)
		}
	}
	if m.batch != nil {
		m.batch.Flush()
	}
	if m.left.Add(-1) != 0 {
		<-m.done
	}
}

// deleteStart starts one delete of a window through the batch, if there
// is one, and reports whether it did.
func (c *conn) deleteStart(m *getMany, key []byte, done func(err error)) bool {
	if d, ok := m.batch.(AsyncDeleter); ok {
		return d.DeleteAsync(key, done)
	}
	if d, ok := c.as.be.(AsyncDeleter); ok {
		return d.DeleteAsync(key, done)
	}
	return false
}

// touchStart starts one touch of a window through the batch, if there is
// one, and reports whether it did.
func (c *conn) touchStart(m *getMany, s *winSet, done func(err error)) bool {
	if t, ok := m.batch.(AsyncToucher); ok {
		return t.TouchAsync(s.it.Key, s.it.Exptime, done)
	}
	if t, ok := c.as.be.(AsyncToucher); ok {
		return t.TouchAsync(s.it.Key, s.it.Exptime, done)
	}
	return false
}

// incrStart starts one incr or decr of a window through the batch, if there
// is one, and reports whether it did.
func (c *conn) incrStart(m *getMany, s *winSet, done func(val uint64, err error)) bool {
	if t, ok := m.batch.(AsyncIncrer); ok {
		return t.IncrAsync(s.it.Key, s.total, s.decr, done)
	}
	if t, ok := c.as.be.(AsyncIncrer); ok {
		return t.IncrAsync(s.it.Key, s.total, s.decr, done)
	}
	return false
}

// storeStart starts one add or replace of a window through the batch, if
// there is one, and reports whether it did.
func (c *conn) storeStart(m *getMany, s *winSet, done func(cas uint64, err error)) bool {
	if st, ok := m.batch.(AsyncStorer); ok {
		return st.StoreAsync(s.mode, &s.it, done)
	}
	if st, ok := c.as.be.(AsyncStorer); ok {
		return st.StoreAsync(s.mode, &s.it, done)
	}
	return false
}

// getsStart starts the gets of keys gk (completions gd), all with
// withCAS, through the batch if there is one, and drops the count of those
// it could not start from m.left.
func (c *conn) getsStart(m *getMany, gk [][]byte, gd []func(it *Item, err error), withCAS bool) {
	if mb, ok := m.batch.(MultiBatch); ok && len(gk) > 1 {
		mb.GetMulti(gk, withCAS, gd)
		return
	}
	for i := range gk {
		var ok bool
		if m.batch != nil {
			ok = m.batch.GetAsync(gk[i], withCAS, gd[i])
		} else {
			ok = c.as.be.GetAsync(gk[i], withCAS, gd[i])
		}
		if !ok {
			m.left.Add(-1)
		}
	}
}
