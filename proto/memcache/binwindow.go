package memcache

import (
	"encoding/binary"
	"errors"
)

// Binary windows. A binary client reads many keys with a run of quiet
// gets (GETQ or GETKQ, one per key) closed by a NOOP or a plain GET:
// libmemcached's mget, pylibmc's get_multi, spymemcached's getBulk, or
// kumo-bench -binary -mget. It loads many with a run of quiet sets (SETQ)
// closed the same way, and a client in noreply mode (libmemcached's) sends
// every storage command and delete quiet. Served one packet at a time,
// every key waited for its own round trip to a server before the next
// packet was read.
//
// A plain get (GET, GETQ, GETK, GETKQ), store (SET, ADD, REPLACE, APPEND,
// PREPEND or their quiet forms, without a CAS) or delete (DELETE or
// DELETEQ, without a CAS) that has more of them right behind it in the
// buffered input is served with them as a window, under the rules of text
// windows (window.go): the requests start together (the gets with one
// message per server where MultiBatch allows), the replies are written in
// packet order once all are done, each exactly as binGet, binStore or
// binDelete would write it, and a window holds only requests whose order
// cannot matter (a write's key appears nowhere else in it). A request that
// fails is served again with the blocking Backend method, in its place,
// where serving it again is safe (see storeAgain and deleteAgain).

// binHeaderLen is the length of a binary request header.
const binHeaderLen = 24

// binSlot is what a window keeps of each packet besides its key (and a
// set's item).
type binSlot struct {
	op     uint8
	opaque uint32
}

// binStoreOp returns the store mode of a binary storage opcode and
// whether its request carries flags and exptime (8 bytes of extras).
func binStoreOp(op uint8) (mode StoreMode, ext8, ok bool) {
	switch op {
	case opSet, opSetQ:
		return ModeSet, true, true
	case opAdd, opAddQ:
		return ModeAdd, true, true
	case opReplace, opReplaceQ:
		return ModeReplace, true, true
	case opAppend, opAppendQ:
		return ModeAppend, false, true
	case opPrepend, opPrependQ:
		return ModePrepend, false, true
	}
	return 0, false, false
}

// binQuietStore reports whether op is the quiet form of a storage command.
func binQuietStore(op uint8) bool {
	return op == opSetQ || op == opAddQ || op == opReplaceQ || op == opAppendQ || op == opPrependQ
}

// binWindow serves the request r with the plain gets, stores and deletes
// that follow it in the buffered input, and reports whether it did; it
// does nothing when no complete one follows. r is a valid get that is not
// a touch (set nil, !del), a valid store without a CAS whose item is *set
// and whose mode is mode, which the caller counted, or a valid delete
// without a CAS (del).
func (c *conn) binWindow(r *binReq, set *Item, mode StoreMode, del bool) bool {
	if !c.windowed() || c.br.Buffered() < binHeaderLen {
		return false
	}
	m := c.window()
	defer m.release()
	m.hi = max(m.hi, 1) // release clears slot 0 also when no window forms
	m.keys[0], m.bin[0], m.isSet[0], m.isDel[0] = r.key, binSlot{r.op, r.opaque}, set != nil || del, del
	m.withCAS[0] = set == nil && !del // a get: every binary get reply carries the CAS unique
	switch {
	case set != nil:
		m.sets[0] = winSet{it: *set, mode: mode}
	case del:
		m.sets[0] = winSet{it: Item{Key: r.key}}
	}
	n := 1
	// Peek and Discard do not move the buffered bytes, so the keys and
	// values taken below stay valid until the next read from c.br.
	buf, _ := c.br.Peek(c.br.Buffered())
	used := 0
	st := &c.s.st
	for size := c.windowSize(m); n < size && len(buf)-used >= binHeaderLen; {
		h := buf[used : used+binHeaderLen]
		op := h[1]
		keylen := int(binary.BigEndian.Uint16(h[2:]))
		extlen := int(h[4])
		bodylen := int64(binary.BigEndian.Uint32(h[8:]))
		isGet := op == opGet || op == opGetQ || op == opGetK || op == opGetKQ
		noCAS := binary.BigEndian.Uint64(h[16:]) == 0
		smode, ext8, isSet := binStoreOp(op)
		isSet = isSet && noCAS
		isDel := (op == opDelete || op == opDeleteQ) && noCAS
		wantExt := 0
		if ext8 {
			wantExt = 8
		}
		ok := h[0] == binReqMagic && keylen > 0 && keylen <= maxKeyLen && int64(len(buf)-used-binHeaderLen) >= bodylen &&
			((isGet || isDel) && extlen == 0 && bodylen == int64(keylen) ||
				isSet && extlen == wantExt && bodylen >= int64(extlen+keylen) &&
					!c.binTooLarge(keylen, bodylen-int64(extlen+keylen), buf[used+binHeaderLen:used+binHeaderLen+extlen]))
		if !ok {
			break // another request, malformed (served and refused as usual), or not all here
		}
		body := buf[used+binHeaderLen : used+binHeaderLen+int(bodylen)]
		key := body[extlen : extlen+keylen : extlen+keylen]
		if isGet && m.setHas(key, n) || !isGet && m.has(key, n) {
			break // its key is taken
		}
		m.keys[n], m.bin[n], m.isSet[n], m.isDel[n] = key, binSlot{op, binary.BigEndian.Uint32(h[12:])}, !isGet, isDel
		switch {
		case isDel:
			m.sets[n] = winSet{it: Item{Key: key}}
		case isSet:
			m.sets[n] = winSet{it: Item{Key: key, Value: body[extlen+keylen : len(body) : len(body)]}, mode: smode}
			if ext8 {
				ext := body[:8]
				m.sets[n].it.Flags = binary.BigEndian.Uint32(ext)
				m.sets[n].it.Exptime = c.s.normExptime(int64(binary.BigEndian.Uint32(ext[4:])))
			}
			st.cmdSet.Add(1)
			c.s.detail.note(key, detailSet)
		default:
			m.withCAS[n] = true // every binary get reply carries it
			st.cmdGet.Add(1)
		}
		n++
		used += binHeaderLen + int(bodylen)
	}
	if n == 1 {
		return false
	}
	c.br.Discard(used)
	c.fetchWindow(m, n)
	m.adapt(n)
	for i := 0; i < n; i++ {
		req := binReq{op: m.bin[i].op, opaque: m.bin[i].opaque, key: m.keys[i]}
		if m.isDel[i] {
			c.binDeleteReply(&req, c.deleteAgain(m.keys[i], m.sets[i].err))
			continue
		}
		if m.isSet[i] {
			s := &m.sets[i]
			cas, err := c.storeAgain(s)
			c.binStoreReply(&req, s.mode, binQuietStore(req.op), cas, err)
			continue
		}
		sl := &m.slots[i]
		err, it := sl.err, &sl.it
		if err != nil && !errors.Is(err, ErrNotFound) {
			err, it = c.get(m.keys[i], false, 0), &c.it
		}
		c.binGetReply(&req, err, it)
	}
	return true
}

// binTooLarge reports whether a stored item of a key of keylen bytes and a
// value of vlen, with the flags in ext (8 bytes of extras, or none: 0),
// exceeds the item size limit; such a request is served alone, as binStore
// refuses it.
func (c *conn) binTooLarge(keylen int, vlen int64, ext []byte) bool {
	var flags uint32
	if len(ext) == 8 {
		flags = binary.BigEndian.Uint32(ext)
	}
	return ItemSize(keylen, vlen, flags) > int64(c.s.maxItem())
}
