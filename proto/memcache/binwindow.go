package memcache

import (
	"encoding/binary"
	"errors"
)

// Binary windows. A binary client reads many keys with a run of quiet
// gets (GETQ or GETKQ, one per key) closed by a NOOP or a plain GET:
// libmemcached's mget, pylibmc's get_multi, spymemcached's getBulk, or
// kumo-bench -binary -mget. It loads many with a run of quiet sets (SETQ)
// closed the same way. Served one packet at a time, every key waited for
// its own round trip to a server before the next packet was read.
//
// A plain get (GET, GETQ, GETK, GETKQ) or plain set (SET or SETQ without a
// CAS) that has more of them right behind it in the buffered input is
// served with them as a window, under the rules of text windows
// (window.go): the requests start together (the gets with one message per
// server where MultiBatch allows), the replies are written in packet order
// once all are done, each exactly as binGet or binStore would write it,
// and a window holds only requests whose order cannot matter (a set's key
// appears nowhere else in it). A get or set that fails is served again
// with the blocking Backend method, in its place.

// binHeaderLen is the length of a binary request header.
const binHeaderLen = 24

// binSlot is what a window keeps of each packet besides its key (and a
// set's item).
type binSlot struct {
	op     uint8
	opaque uint32
}

// binWindow serves the request r with the plain gets, sets and deletes
// that follow it in the buffered input, and reports whether it did; it
// does nothing when no complete one follows. r is a valid get that is not
// a touch (set nil, !del), a valid plain set whose item is *set, which the
// caller counted, or a valid delete without a CAS (del).
func (c *conn) binWindow(r *binReq, set *Item, del bool) bool {
	if c.as.be == nil || c.br.Buffered() < binHeaderLen {
		return false
	}
	m := c.window()
	defer m.release()
	m.hi = max(m.hi, 1) // release clears slot 0 also when no window forms
	m.keys[0], m.bin[0], m.isSet[0], m.isDel[0] = r.key, binSlot{r.op, r.opaque}, set != nil || del, del
	switch {
	case set != nil:
		m.sets[0] = winSet{it: *set}
	case del:
		m.sets[0] = winSet{it: Item{Key: r.key}}
	}
	n := 1
	// Peek and Discard do not move the buffered bytes, so the keys and
	// values taken below stay valid until the next read from c.br.
	buf, _ := c.br.Peek(c.br.Buffered())
	used := 0
	st := &c.s.st
	for n < m.size && len(buf)-used >= binHeaderLen {
		h := buf[used : used+binHeaderLen]
		op := h[1]
		keylen := int(binary.BigEndian.Uint16(h[2:]))
		extlen := int(h[4])
		bodylen := int64(binary.BigEndian.Uint32(h[8:]))
		isGet := op == opGet || op == opGetQ || op == opGetK || op == opGetKQ
		noCAS := binary.BigEndian.Uint64(h[16:]) == 0
		isSet := (op == opSet || op == opSetQ) && noCAS
		isDel := (op == opDelete || op == opDeleteQ) && noCAS
		ok := h[0] == binReqMagic && keylen > 0 && keylen <= maxKeyLen && int64(len(buf)-used-binHeaderLen) >= bodylen &&
			((isGet || isDel) && extlen == 0 && bodylen == int64(keylen) ||
				isSet && extlen == 8 && bodylen >= int64(8+keylen) &&
					ItemSize(keylen, bodylen-int64(8+keylen), binary.BigEndian.Uint32(buf[used+binHeaderLen:])) <= int64(c.s.maxItem()))
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
			ext := body[:8]
			m.sets[n] = winSet{it: Item{Key: key, Value: body[extlen+keylen : len(body) : len(body)],
				Flags: binary.BigEndian.Uint32(ext), Exptime: c.s.normExptime(int64(binary.BigEndian.Uint32(ext[4:])))}}
			st.cmdSet.Add(1)
			c.s.detail.note(key, detailSet)
		default:
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
			quiet := req.op == opSetQ
			if s.err == nil {
				c.binStoreReply(&req, ModeSet, quiet, s.cas, nil)
			} else {
				cas, err := c.s.Backend.Store(c.ctx, ModeSet, &s.it)
				c.binStoreReply(&req, ModeSet, quiet, cas, err)
			}
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
