package memcache

import (
	"encoding/binary"
	"errors"
	"io"
)

// Binary protocol constants (memcached's protocol_binary.h).
const (
	binReqMagic = 0x80
	binResMagic = 0x81
)

// Binary opcodes.
const (
	opGet        = 0x00
	opSet        = 0x01
	opAdd        = 0x02
	opReplace    = 0x03
	opDelete     = 0x04
	opIncrement  = 0x05
	opDecrement  = 0x06
	opQuit       = 0x07
	opFlush      = 0x08
	opGetQ       = 0x09
	opNoop       = 0x0a
	opVersion    = 0x0b
	opGetK       = 0x0c
	opGetKQ      = 0x0d
	opAppend     = 0x0e
	opPrepend    = 0x0f
	opStat       = 0x10
	opSetQ       = 0x11
	opAddQ       = 0x12
	opReplaceQ   = 0x13
	opDeleteQ    = 0x14
	opIncrementQ = 0x15
	opDecrementQ = 0x16
	opQuitQ      = 0x17
	opFlushQ     = 0x18
	opAppendQ    = 0x19
	opPrependQ   = 0x1a
	opVerbosity  = 0x1b
	opTouch      = 0x1c
	opGAT        = 0x1d
	opGATQ       = 0x1e
	opGATK       = 0x23
	opGATKQ      = 0x24
)

// Binary response statuses.
const (
	stOK         = 0x00
	stNotFound   = 0x01
	stExists     = 0x02
	stTooBig     = 0x03
	stInvalid    = 0x04
	stNotStored  = 0x05
	stNonNumeric = 0x06
	stUnknown    = 0x81
	stNoMemory   = 0x82
	stInternal   = 0x84
)

func statusMsg(st uint16) string {
	switch st {
	case stNotFound:
		return "Not found"
	case stExists:
		return "Data exists for key."
	case stTooBig:
		return "Too large."
	case stInvalid:
		return "Invalid arguments"
	case stNotStored:
		return "Not stored."
	case stNonNumeric:
		return "Non-numeric server-side value for incr or decr"
	case stUnknown:
		return "Unknown command"
	case stNoMemory:
		return "Out of memory"
	}
	return ""
}

// binReq is the decoded request header plus its body parts (which alias
// c.in and stay valid until the next request).
type binReq struct {
	op      uint8
	opaque  uint32
	cas     uint64
	extras  []byte
	key     []byte
	value   []byte
	bodylen uint32
}

func (c *conn) serveBinary() error {
	var r binReq
	for {
		if !c.as.pending && c.werr != nil {
			return c.werr // the client is gone: serve nothing more
		}
		if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
			return err
		}
		h := c.hdr[:]
		if h[0] != binReqMagic {
			return errBadMagic
		}
		r.op = h[1]
		keylen := int(binary.BigEndian.Uint16(h[2:]))
		extlen := int(h[4])
		r.bodylen = binary.BigEndian.Uint32(h[8:])
		r.opaque = binary.BigEndian.Uint32(h[12:])
		r.cas = binary.BigEndian.Uint64(h[16:])
		if c.br.Buffered() > int(min(r.bodylen, 1<<30)) && c.resetWithPipeline() {
			return errPeerReset
		}
		if int64(keylen)+int64(extlen) > int64(r.bodylen) {
			c.binError(&r, stInvalid)
			return errBadPacket
		}
		if int64(r.bodylen) > int64(c.s.maxItem())+int64(keylen)+int64(extlen) || keylen > maxKeyLen {
			// Too big to take in: refuse without buffering it. Storage
			// commands get "too large" and the body is swallowed, whatever
			// its length, as in memcached (and as the text protocol does);
			// anything else is a broken client.
			c.s.st.protoErrs.Add(1)
			if isBinStore(r.op) && keylen <= maxKeyLen {
				c.s.st.storeTooLarge.Add(1)
				if err := c.binRefuse(&r, keylen, extlen, stTooBig); err != nil {
					return err
				}
				continue
			}
			c.binError(&r, stInvalid)
			return errBadPacket
		}
		body := c.inBuf(int(r.bodylen))
		if body == nil {
			// Over maxBodies: refused as memcached refuses what it has no
			// memory for.
			if err := c.binRefuse(&r, keylen, extlen, stNoMemory); err != nil {
				return err
			}
			continue
		}
		if err := c.readBody(body); err != nil {
			return err
		}
		r.extras = body[:extlen]
		r.key = body[extlen : extlen+keylen]
		r.value = body[extlen+keylen:]
		if err := c.binDispatch(&r); err != nil {
			return err
		}
		if cap(*c.in) > 32<<10 || cap(*c.out) > 32<<10 {
			c.shrink()
		}
	}
}

// isBinStore reports whether op stores a value.
func isBinStore(op uint8) bool {
	switch op {
	case opSet, opAdd, opReplace, opAppend, opPrepend, opSetQ, opAddQ, opReplaceQ, opAppendQ, opPrependQ:
		return true
	}
	return false
}

// binRefuse answers the request whose header is in r with status and
// swallows its body without buffering it. As in memcached, a set refused
// so does not leave the old value behind.
func (c *conn) binRefuse(r *binReq, keylen, extlen int, status uint16) error {
	c.binError(r, status)
	skip := int64(r.bodylen)
	if (r.op == opSet || r.op == opSetQ) && keylen > 0 {
		var kb [maxKeyLen + 255]byte
		ek := kb[:extlen+keylen]
		if _, err := io.ReadFull(c.br, ek); err != nil {
			return err
		}
		c.s.Backend.Delete(c.ctx, ek[extlen:], 0)
		skip -= int64(len(ek))
	}
	return c.discard(skip)
}

// binHeader writes a response header.
func (c *conn) binHeader(r *binReq, status uint16, extlen, keylen, bodylen int, cas uint64) {
	h := c.rhdr[:]
	h[0] = binResMagic
	h[1] = r.op
	binary.BigEndian.PutUint16(h[2:], uint16(keylen))
	h[4] = byte(extlen)
	h[5] = 0
	binary.BigEndian.PutUint16(h[6:], status)
	binary.BigEndian.PutUint32(h[8:], uint32(bodylen))
	binary.BigEndian.PutUint32(h[12:], r.opaque)
	binary.BigEndian.PutUint64(h[16:], cas)
	c.bw.Write(h)
}

// binError writes an error response with memcached's message.
func (c *conn) binError(r *binReq, status uint16) {
	msg := statusMsg(status)
	c.binHeader(r, status, 0, 0, len(msg), 0)
	c.bw.WriteString(msg)
}

func (c *conn) binServerError(r *binReq, err error) {
	if errors.Is(err, ErrNoMemory) {
		c.binError(r, stNoMemory)
		return
	}
	msg := err.Error()
	c.binHeader(r, stInternal, 0, 0, len(msg), 0)
	c.bw.WriteString(msg)
}

// binOK writes an empty success response unless quiet.
func (c *conn) binOK(r *binReq, quiet bool, cas uint64) {
	if !quiet {
		c.binHeader(r, stOK, 0, 0, 0, cas)
	}
}

func (c *conn) binDispatch(r *binReq) error {
	switch r.op {
	case opGet, opGetQ, opGetK, opGetKQ, opGAT, opGATQ, opGATK, opGATKQ, opTouch:
		return c.binGet(r)
	case opSet, opSetQ, opAdd, opAddQ, opReplace, opReplaceQ:
		return c.binStore(r)
	case opAppend, opAppendQ, opPrepend, opPrependQ:
		return c.binStore(r)
	case opDelete, opDeleteQ:
		return c.binDelete(r)
	case opIncrement, opIncrementQ, opDecrement, opDecrementQ:
		return c.binIncr(r)
	case opQuit, opQuitQ:
		if r.bodylen != 0 {
			return c.binInvalid(r)
		}
		c.binOK(r, r.op == opQuitQ, 0)
		return errQuit
	case opFlush, opFlushQ:
		if len(r.key) != 0 || len(r.value) != 0 || (len(r.extras) != 0 && len(r.extras) != 4) {
			return c.binInvalid(r)
		}
		var e int64
		if len(r.extras) == 4 {
			e = int64(int32(binary.BigEndian.Uint32(r.extras)))
		}
		c.s.st.cmdFlush.Add(1)
		if err := c.s.Backend.FlushAll(c.ctx, c.s.flushDelay(e)); err != nil {
			c.binServerError(r, err)
			return nil
		}
		c.binOK(r, r.op == opFlushQ, 0)
	case opNoop:
		if r.bodylen != 0 {
			return c.binInvalid(r)
		}
		c.binOK(r, false, 0)
	case opVersion:
		if r.bodylen != 0 {
			return c.binInvalid(r)
		}
		v := c.s.version()
		c.binHeader(r, stOK, 0, 0, len(v), 0)
		c.bw.WriteString(v)
	case opVerbosity:
		if len(r.extras) != 4 || len(r.key) != 0 || len(r.value) != 0 {
			return c.binInvalid(r)
		}
		c.binOK(r, false, 0)
	case opStat:
		if len(r.extras) != 0 || len(r.value) != 0 {
			return c.binInvalid(r)
		}
		c.binStat(r)
	default:
		c.s.st.protoErrs.Add(1)
		c.binError(r, stUnknown)
	}
	return nil
}

// binInvalid answers a malformed packet and ends the connection, as
// memcached does.
func (c *conn) binInvalid(r *binReq) error {
	c.s.st.protoErrs.Add(1)
	c.binError(r, stInvalid)
	return errBadPacket
}

func (c *conn) binGet(r *binReq) error {
	touch := r.op == opGAT || r.op == opGATQ || r.op == opGATK || r.op == opGATKQ || r.op == opTouch
	wantExt := 0
	if touch {
		wantExt = 4
	}
	if len(r.extras) != wantExt || len(r.key) == 0 || len(r.value) != 0 {
		return c.binInvalid(r)
	}
	var exptime int64
	st := &c.s.st
	if touch {
		exptime = c.s.normExptime(int64(binary.BigEndian.Uint32(r.extras)))
		st.cmdTouch.Add(1)
	}
	if !touch {
		st.cmdGet.Add(1) // memcached counts GAT and TOUCH as touches only
	}
	if !touch && c.binWindow(r, nil, 0, false) {
		return nil
	}
	c.binGetReply(r, c.get(r.key, touch, exptime), &c.it)
	return nil
}

// binGetReply counts and writes the reply to the get-family request r
// (GET, GETQ, GETK, GETKQ, the GATs, TOUCH) whose outcome is err and, on
// success, it.
func (c *conn) binGetReply(r *binReq, err error, it *Item) {
	quiet := r.op == opGetQ || r.op == opGetKQ || r.op == opGATQ || r.op == opGATKQ
	withKey := r.op == opGetK || r.op == opGetKQ || r.op == opGATK || r.op == opGATKQ
	touch := r.op == opGAT || r.op == opGATQ || r.op == opGATK || r.op == opGATKQ || r.op == opTouch
	// TOUCH is GAT without the value: memcached answers it with the flags
	// and the CAS unique.
	withValue := r.op != opTouch
	st := &c.s.st
	switch {
	case err == nil:
		if withValue {
			c.s.detail.note(r.key, detailHit)
		}
		if touch {
			st.touchHits.Add(1)
		} else {
			st.getHits.Add(1)
		}
		klen := 0
		if withKey {
			klen = len(r.key)
		}
		vlen := len(it.Value)
		if !withValue {
			vlen = 0
		}
		c.binHeader(r, stOK, 4, klen, 4+klen+vlen, it.CAS)
		binary.BigEndian.PutUint32(c.scr[:4], it.Flags)
		c.bw.Write(c.scr[:4])
		if withKey {
			c.bw.Write(r.key)
		}
		c.bw.Write(it.Value[:vlen])
	case errors.Is(err, ErrNotFound):
		if withValue {
			c.s.detail.note(r.key, detailGet)
		}
		if touch {
			st.touchMisses.Add(1)
		} else {
			st.getMisses.Add(1)
		}
		if quiet {
			return
		}
		if withKey {
			c.binHeader(r, stNotFound, 0, len(r.key), len(r.key), 0)
			c.bw.Write(r.key)
		} else {
			c.binError(r, stNotFound)
		}
	default:
		c.binServerError(r, err)
	}
}

func (c *conn) binStore(r *binReq) error {
	mode, ext8, _ := binStoreOp(r.op) // the caller dispatches only storage commands here
	quiet := binQuietStore(r.op)
	wantExt := 0
	if ext8 {
		wantExt = 8
	}
	if len(r.extras) != wantExt || len(r.key) == 0 {
		return c.binInvalid(r)
	}
	c.s.st.cmdSet.Add(1)
	c.s.detail.note(r.key, detailSet)
	var flags uint32
	if len(r.extras) == 8 {
		flags = binary.BigEndian.Uint32(r.extras)
	}
	if c.tooLarge(r.key, int64(len(r.value)), flags) {
		c.s.st.storeTooLarge.Add(1)
		c.binError(r, stTooBig)
		if mode == ModeSet {
			c.s.Backend.Delete(c.ctx, r.key, 0) // as the text protocol's set
		}
		return nil
	}
	c.it = Item{Key: r.key, Value: r.value, CAS: r.cas}
	if wantExt == 8 {
		c.it.Flags = binary.BigEndian.Uint32(r.extras)
		c.it.Exptime = c.s.normExptime(int64(binary.BigEndian.Uint32(r.extras[4:])))
	}
	if r.cas != 0 && (mode == ModeSet || mode == ModeAdd || mode == ModeReplace) {
		mode = ModeCAS // memcached: a CAS turns set, add and replace into cas
	}
	if r.cas == 0 && c.binWindow(r, &c.it, mode, false) {
		return nil
	}
	cas, err := c.s.Backend.Store(c.ctx, mode, &c.it)
	c.binStoreReply(r, mode, quiet, cas, err)
	return nil
}

// binStoreReply counts and writes the reply to the storage request r
// (of mode, quiet or not) whose outcome is cas and err.
func (c *conn) binStoreReply(r *binReq, mode StoreMode, quiet bool, cas uint64, err error) {
	st := &c.s.st
	switch {
	case err == nil:
		if mode == ModeCAS {
			st.casHits.Add(1)
		}
		c.binOK(r, quiet, cas)
	case errors.Is(err, ErrNotStored):
		switch mode {
		case ModeAdd:
			c.binError(r, stExists)
		case ModeReplace:
			c.binError(r, stNotFound)
		default:
			c.binError(r, stNotStored)
		}
	case errors.Is(err, ErrExists):
		st.casBadval.Add(1)
		c.binError(r, stExists)
	case errors.Is(err, ErrNotFound):
		st.casMisses.Add(1)
		c.binError(r, stNotFound)
	case errors.Is(err, ErrTooLarge):
		c.binError(r, stTooBig)
	default:
		c.binServerError(r, err)
	}
}

func (c *conn) binDelete(r *binReq) error {
	if len(r.extras) != 0 || len(r.key) == 0 || len(r.value) != 0 {
		return c.binInvalid(r)
	}
	if r.cas == 0 && c.binWindow(r, nil, 0, true) {
		return nil
	}
	c.binDeleteReply(r, c.s.Backend.Delete(c.ctx, r.key, r.cas))
	return nil
}

// binDeleteReply counts and writes the reply to the delete r whose outcome
// is err.
func (c *conn) binDeleteReply(r *binReq, err error) {
	c.s.detail.note(r.key, detailDel)
	switch {
	case err == nil:
		c.s.st.deleteHits.Add(1)
		c.binOK(r, r.op == opDeleteQ, 0)
	case errors.Is(err, ErrNotFound):
		c.s.st.deleteMisses.Add(1)
		c.binError(r, stNotFound)
	case errors.Is(err, ErrExists):
		c.binError(r, stExists)
	default:
		c.binServerError(r, err)
	}
}

func (c *conn) binIncr(r *binReq) error {
	if len(r.extras) != 20 || len(r.key) == 0 || len(r.value) != 0 {
		return c.binInvalid(r)
	}
	decr := r.op == opDecrement || r.op == opDecrementQ
	quiet := r.op == opIncrementQ || r.op == opDecrementQ
	delta := binary.BigEndian.Uint64(r.extras)
	initial := binary.BigEndian.Uint64(r.extras[8:])
	exp := binary.BigEndian.Uint32(r.extras[16:])
	var create *Item
	if exp != 0xffffffff {
		c.it = Item{Key: r.key, Value: appendUint(c.scr[:0], initial), Exptime: c.s.normExptime(int64(exp))}
		create = &c.it
	}
	// The CAS in the header makes the update conditional, as in memcached.
	ar := Arith{Delta: delta, Decr: decr, Create: create, CAS: r.cas}
	var res ArithResult
	ok, err := c.arith(r.key, &ar, false, &res)
	if !ok {
		err = errors.New("memcache: backend cannot compare CAS on incr/decr")
	}
	v, cas := res.Value, res.CAS
	st := &c.s.st
	switch {
	case err == nil:
		if decr {
			st.decrHits.Add(1)
		} else {
			st.incrHits.Add(1)
		}
		if !quiet {
			c.binHeader(r, stOK, 0, 0, 8, cas)
			binary.BigEndian.PutUint64(c.scr[:8], v)
			c.bw.Write(c.scr[:8])
		}
	case errors.Is(err, ErrNotFound):
		if decr {
			st.decrMisses.Add(1)
		} else {
			st.incrMisses.Add(1)
		}
		c.binError(r, stNotFound)
	case errors.Is(err, ErrNonNumeric):
		c.binError(r, stNonNumeric)
	case errors.Is(err, ErrExists):
		c.binError(r, stExists)
	default:
		c.binServerError(r, err)
	}
	return nil
}

func (c *conn) binStat(r *binReq) {
	add := func(name, value string) {
		c.binHeader(r, stOK, 0, len(name), len(name)+len(value), 0)
		c.bw.WriteString(name)
		c.bw.WriteString(value)
	}
	switch string(r.key) {
	case "":
		if err := c.s.writeStats(c.ctx, add); err != nil {
			c.binServerError(r, err)
			return
		}
	case "reset":
		c.s.resetStats()
	case "settings":
		c.settingsStats(add)
	case "detail dump":
		add("detailed", string(c.s.detail.dump(c.scr[:0])))
	case "detail on", "detail off":
		c.s.detail.on.Store(string(r.key) == "detail on")
	case "items", "slabs", "sizes", "conns":
	default:
		c.binError(r, stNotFound)
		return
	}
	c.binHeader(r, stOK, 0, 0, 0, 0)
}
