package memcache

import "encoding/binary"

// The event loop's binary protocol: GET, GETK and SET (not their quiet
// forms, which come pipelined), well formed and within the limits; any
// other packet leaves the loop for serveBinary, as in parseLoopReq.

// parseLoopBin parses the binary request at the start of b (b[0] is the
// request magic).
func parseLoopBin(b []byte, s *Server) loopReq {
	r := loopReq{kind: reqOther, binary: true}
	if len(b) < 24 {
		r.kind = reqIncomplete
		return r
	}
	op := b[1]
	keylen := int(binary.BigEndian.Uint16(b[2:]))
	extlen := int(b[4])
	bodylen := int64(binary.BigEndian.Uint32(b[8:]))
	cas := binary.BigEndian.Uint64(b[16:])
	if keylen == 0 || keylen > maxKeyLen || int64(keylen+extlen) > bodylen {
		return r
	}
	end := 24 + bodylen
	if end > loopBufMax || bodylen > int64(s.maxItem())+int64(keylen+extlen) {
		return r // the ordinary way, which refuses a body too large before it comes
	}
	switch {
	case (op == opGet || op == opGetK) && extlen == 0 && bodylen == int64(keylen):
	case op == opSet && extlen == 8 && cas == 0 && len(b) < 28:
		r.kind = reqIncomplete // its flags (which count in its size) are not here yet
		return r
	case op == opSet && extlen == 8 && cas == 0 &&
		ItemSize(keylen, bodylen-int64(keylen+extlen), binary.BigEndian.Uint32(b[24:])) <= int64(s.maxItem()):
	default:
		return r // quiet and other commands, a set with a CAS, anything odd
	}
	if end > int64(len(b)) {
		r.kind = reqIncomplete
		return r
	}
	body := b[24:end]
	r.op, r.opaque = op, binary.BigEndian.Uint32(b[12:])
	r.key = body[extlen : extlen+keylen]
	r.n = int(end)
	if op == opSet {
		r.kind = reqSet
		r.it = Item{Key: r.key, Value: body[extlen+keylen:], Flags: binary.BigEndian.Uint32(body),
			Exptime: s.normExptime(int64(binary.BigEndian.Uint32(body[4:])))}
		return r
	}
	r.kind, r.withCAS = reqGet, true // every binary get reply carries the CAS unique
	return r
}

// appendBinHeader appends a response header for request r.
func appendBinHeader(b []byte, r *loopReq, status uint16, extlen, keylen, bodylen int, cas uint64) []byte {
	var h [24]byte
	h[0] = binResMagic
	h[1] = r.op
	binary.BigEndian.PutUint16(h[2:], uint16(keylen))
	h[4] = byte(extlen)
	binary.BigEndian.PutUint16(h[6:], status)
	binary.BigEndian.PutUint32(h[8:], uint32(bodylen))
	binary.BigEndian.PutUint32(h[12:], r.opaque)
	binary.BigEndian.PutUint64(h[16:], cas)
	return append(b, h[:]...)
}

// appendBinGet appends the reply to the binary get r: the item it, or a
// miss if it is nil.
func appendBinGet(b []byte, r *loopReq, it *Item) []byte {
	klen := 0
	if r.op == opGetK {
		klen = len(r.key)
	}
	if it == nil {
		if klen > 0 {
			return append(appendBinHeader(b, r, stNotFound, 0, klen, klen, 0), r.key...)
		}
		msg := statusMsg(stNotFound)
		return append(appendBinHeader(b, r, stNotFound, 0, 0, len(msg), 0), msg...)
	}
	b = appendBinHeader(b, r, stOK, 4, klen, 4+klen+len(it.Value), it.CAS)
	b = binary.BigEndian.AppendUint32(b, it.Flags)
	b = append(b, r.key[:klen]...)
	return append(b, it.Value...)
}
