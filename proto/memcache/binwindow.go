package memcache

import (
	"encoding/binary"
	"errors"
)

// Binary get windows. A binary client reads many keys with a run of quiet
// gets (GETQ or GETKQ, one per key) closed by a NOOP or a plain GET:
// libmemcached's mget, pylibmc's get_multi, spymemcached's getBulk, or
// kumo-bench -binary -mget. Served one packet at a time, every key waited
// for its own round trip to a server before the next packet was read. A
// get-family packet (GET, GETQ, GETK, GETKQ) that has more of them right
// behind it in the buffered input is served with them as a window, as
// text windows are (window.go): the keys start together (one message per
// server with MultiBatch), and the replies are written in packet order
// once all are done, each exactly as binGet would write it. A get that
// fails is served again with the blocking Backend.Get, in its place. Gets
// cannot depend on each other's order, so a window changes no reply.

// binHeaderLen is the length of a binary request header.
const binHeaderLen = 24

// binSlot is what a window keeps of each packet besides its key.
type binSlot struct {
	op     uint8
	opaque uint32
}

// binWindow serves the get r (valid, not a touch) together with the
// plain gets that follow it in the buffered input, and reports whether it
// did; it does nothing when no complete get follows.
func (c *conn) binWindow(r *binReq) bool {
	if c.as.be == nil || c.br.Buffered() < binHeaderLen {
		return false
	}
	m := c.window()
	defer m.release()
	m.keys[0], m.bin[0] = r.key, binSlot{r.op, r.opaque}
	n := 1
	// Peek and Discard do not move the buffered bytes, so the keys taken
	// below stay valid until the next read from c.br.
	buf, _ := c.br.Peek(c.br.Buffered())
	used := 0
	for n < m.size && len(buf)-used >= binHeaderLen {
		h := buf[used : used+binHeaderLen]
		op := h[1]
		keylen := int(binary.BigEndian.Uint16(h[2:]))
		bodylen := binary.BigEndian.Uint32(h[8:])
		if h[0] != binReqMagic || (op != opGet && op != opGetQ && op != opGetK && op != opGetKQ) ||
			h[4] != 0 || keylen == 0 || keylen > maxKeyLen || bodylen != uint32(keylen) ||
			len(buf)-used-binHeaderLen < keylen {
			break // not a plain get, malformed (binGet refuses it), or not all here
		}
		k := used + binHeaderLen
		m.keys[n] = buf[k : k+keylen : k+keylen]
		m.bin[n] = binSlot{op, binary.BigEndian.Uint32(h[12:])}
		n++
		used = k + keylen
	}
	if n == 1 {
		return false
	}
	c.br.Discard(used)
	c.s.st.cmdGet.Add(uint64(n))
	c.fetchWindow(m, n)
	m.adapt(n)
	for i := 0; i < n; i++ {
		req := binReq{op: m.bin[i].op, opaque: m.bin[i].opaque, key: m.keys[i]}
		sl := &m.slots[i]
		err, it := sl.err, &sl.it
		if err != nil && !errors.Is(err, ErrNotFound) {
			err, it = c.get(m.keys[i], false, 0), &c.it
		}
		c.binGetReply(&req, err, it)
	}
	return true
}
