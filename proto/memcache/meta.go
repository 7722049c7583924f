package memcache

import (
	"encoding/base64"
	"errors"
	"io"
)

// Meta commands (memcached 1.6 protocol.txt "Meta Commands"). Supported
// flags:
//
//	mg <key> b c f h k l O q s t v T N   (h and l always report 0)
//	ms <key> <datalen> b c C F I k O q s S T M(E|A|P|R|S)   (I is accepted and ignored)
//	md <key> b C I k O q T               (I deletes, no stale items)
//	ma <key> b N J D M(I|+|D|-) q O k c v
//	mn, me <key>
//
// Return flags come back in request order. q hides EN for mg and HD for
// ms, md and ma; errors are always sent.

func flagBit(ch byte) uint64 {
	switch {
	case ch >= 'a' && ch <= 'z':
		return 1 << (ch - 'a')
	case ch >= 'A' && ch <= 'Z':
		return 1 << (26 + ch - 'A')
	}
	return 0
}

func flagMask(s string) uint64 {
	var m uint64
	for i := 0; i < len(s); i++ {
		m |= flagBit(s[i])
	}
	return m
}

var (
	mgFlags = flagMask("bcfhklOqstvTNE")
	msFlags = flagMask("bcCFIkOqsSTM")
	mdFlags = flagMask("bCIkOqT")
	maFlags = flagMask("bNJDMqOkcv")
)

const maxOpaque = 32

// metaArgs holds the parsed flags of one meta command.
type metaArgs struct {
	mask    uint64
	ttl     int64 // T
	vivify  int64 // N
	cas     uint64
	flags   uint32
	delta   uint64
	initial uint64
	mode    byte
	errstr  string
}

func (a *metaArgs) has(ch byte) bool { return a.mask&flagBit(ch) != 0 }

// parseMeta parses flag tokens against the allowed mask.
func parseMeta(flags [][]byte, allowed uint64, a *metaArgs) bool {
	*a = metaArgs{delta: 1}
	for _, f := range flags {
		bit := flagBit(f[0])
		if bit == 0 || allowed&bit == 0 {
			a.errstr = "CLIENT_ERROR invalid flag\r\n"
			return false
		}
		a.mask |= bit
		arg := f[1:]
		ok := true
		switch f[0] {
		case 'T':
			a.ttl, ok = parseInt32(arg)
		case 'N':
			a.vivify, ok = parseInt32(arg)
		case 'C':
			a.cas, ok = parseUint(arg)
		case 'F':
			var v uint64
			v, ok = parseUint(arg)
			a.flags = uint32(v)
		case 'D':
			a.delta, ok = parseUint(arg)
		case 'J':
			a.initial, ok = parseUint(arg)
		case 'M':
			ok = len(arg) == 1
			if ok {
				a.mode = arg[0]
			}
		case 'O':
			if len(arg) > maxOpaque {
				a.errstr = "CLIENT_ERROR opaque token too long\r\n"
				return false
			}
		}
		if !ok {
			a.errstr = "CLIENT_ERROR bad token in command line format\r\n"
			return false
		}
	}
	return true
}

// metaKey returns the key of a meta command, decoded if the b flag is set.
func (c *conn) metaKey(tok []byte, a *metaArgs) ([]byte, bool) {
	if a.has('b') {
		if base64.StdEncoding.DecodedLen(len(tok)) > len(c.b64key)+2 {
			return nil, false
		}
		var tmp [maxKeyLen + 3]byte
		n, err := base64.StdEncoding.Decode(tmp[:], tok)
		if err != nil || n == 0 || n > maxKeyLen {
			return nil, false
		}
		copy(c.b64key[:], tmp[:n])
		return c.b64key[:n], true
	}
	return tok, len(tok) > 0 && len(tok) <= maxKeyLen
}

// appendRet appends the return flags that do not depend on the item.
func appendRet(b []byte, flags [][]byte, keyTok []byte, cas uint64, a *metaArgs) []byte {
	for _, f := range flags {
		b = appendRetFlag(b, f, keyTok, cas, a)
	}
	return b
}

func appendRetFlag(b []byte, f []byte, keyTok []byte, cas uint64, a *metaArgs) []byte {
	switch f[0] {
	case 'O':
		b = append(b, ' ')
		b = append(b, f...)
	case 'k':
		b = append(b, " k"...)
		b = append(b, keyTok...)
	case 'c':
		b = append(b, " c"...)
		b = appendUint(b, cas)
	case 'b':
		if a.has('k') {
			b = append(b, " b"...)
		}
	}
	return b
}

func (c *conn) metaGet(tok [][]byte) {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	var a metaArgs
	flags := tok[2:]
	if !parseMeta(flags, mgFlags, &a) {
		c.bw.WriteString(a.errstr)
		return
	}
	key, ok := c.metaKey(tok[1], &a)
	if !ok {
		c.bw.WriteString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	st := &c.s.st
	st.cmdGet.Add(1)
	touch := a.has('T')
	if touch {
		st.cmdTouch.Add(1)
	}
	err := c.get(key, touch, c.s.normExptime(a.ttl))
	won := false
	if errors.Is(err, ErrNotFound) && a.has('N') {
		c.it = Item{Key: key, Value: (*c.out)[:0], Exptime: c.s.normExptime(a.vivify)}
		var cas uint64
		cas, err = c.s.Backend.Store(c.ctx, ModeAdd, &c.it)
		if err == nil {
			c.it.CAS = cas
			won = true
		} else if errors.Is(err, ErrNotStored) {
			err = c.get(key, false, 0)
		}
	}
	switch {
	case err == nil:
		st.getHits.Add(1)
		if touch {
			st.touchHits.Add(1)
		}
	case errors.Is(err, ErrNotFound):
		st.getMisses.Add(1)
		if touch {
			st.touchMisses.Add(1)
		}
		if !a.has('q') {
			c.bw.WriteString("EN\r\n")
		}
		return
	default:
		c.serverError(err)
		return
	}
	b := c.reserve(2*len(tok[1]) + 64 + len(flags)*(maxOpaque+4))
	if a.has('v') {
		b = append(b, "VA "...)
		b = appendUint(b, uint64(len(c.it.Value)))
	} else {
		b = append(b, "HD"...)
	}
	for _, f := range flags {
		switch f[0] {
		case 'f':
			b = append(b, " f"...)
			b = appendUint(b, uint64(c.it.Flags))
		case 's':
			b = append(b, " s"...)
			b = appendUint(b, uint64(len(c.it.Value)))
		case 't':
			b = append(b, " t"...)
			b = appendInt(b, c.s.ttl(c.it.Exptime))
		case 'h':
			b = append(b, " h0"...)
		case 'l':
			b = append(b, " l0"...)
		}
		b = appendRetFlag(b, f, tok[1], c.it.CAS, &a)
	}
	if won {
		b = append(b, " W"...)
	}
	b = append(b, "\r\n"...)
	c.bw.Write(b)
	if a.has('v') {
		c.bw.Write(c.it.Value)
		c.bw.WriteString("\r\n")
	}
}

func (c *conn) metaSet(tok [][]byte) error {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString("ERROR\r\n")
		return nil
	}
	if len(tok) < 3 {
		c.bw.WriteString("CLIENT_ERROR bad command line format\r\n")
		return nil
	}
	vlen, ok := parseInt32(tok[2])
	if !ok || vlen < 0 {
		c.bw.WriteString("CLIENT_ERROR bad data chunk\r\n")
		return nil
	}
	var a metaArgs
	flags := tok[3:]
	mode := ModeSet
	if parseMeta(flags, msFlags, &a) {
		switch a.mode {
		case 0, 'S', 's':
		case 'E', 'e':
			mode = ModeAdd
		case 'A', 'a':
			mode = ModeAppend
		case 'P', 'p':
			mode = ModePrepend
		case 'R', 'r':
			mode = ModeReplace
		default:
			a.errstr = "CLIENT_ERROR invalid mode for ms\r\n"
		}
	}
	key, ok := c.metaKey(tok[1], &a)
	if !ok && a.errstr == "" {
		a.errstr = "CLIENT_ERROR bad command line format\r\n"
	}
	if a.errstr != "" {
		c.bw.WriteString(a.errstr)
		return c.discard(vlen + 2)
	}
	c.s.st.cmdSet.Add(1)
	if c.tooLarge(key, vlen) {
		c.s.st.storeTooLarge.Add(1)
		c.bw.WriteString("SERVER_ERROR object too large for cache\r\n")
		return c.discard(vlen + 2)
	}
	k := append(c.keybuf[:0], key...)
	// The key token (for k) lives in the read buffer; keep a copy too.
	ktok := tok[1]
	if !a.has('b') {
		ktok = k
	} else {
		ktok = append(c.scr[:0], ktok...)
		if len(ktok) > len(c.scr) {
			ktok = nil
		}
	}
	// Copy the flags we echo (O) before reading data: they live in the read
	// buffer. Opaque tokens are short; keep them in c.scr2 via one pass.
	var opaque [maxOpaque + 1]byte
	no := 0
	retK, retC, retB := a.has('k'), a.has('c'), a.has('b') && a.has('k')
	for _, f := range flags {
		if f[0] == 'O' {
			no = copy(opaque[:], f)
		}
	}
	data := c.inBuf(int(vlen) + 2)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return err
	}
	if data[vlen] != '\r' || data[vlen+1] != '\n' {
		c.bw.WriteString("CLIENT_ERROR bad data chunk\r\n")
		return nil
	}
	c.it = Item{Key: k, Value: data[:vlen], Flags: a.flags, Exptime: c.s.normExptime(a.ttl)}
	if a.has('C') {
		c.it.CAS = a.cas
		if mode == ModeSet {
			mode = ModeCAS
		}
	}
	cas, err := c.s.Backend.Store(c.ctx, mode, &c.it)
	var status string
	switch {
	case err == nil:
		if a.has('q') {
			return nil
		}
		status = "HD"
	case errors.Is(err, ErrNotStored):
		status = "NS"
	case errors.Is(err, ErrExists):
		status = "EX"
	case errors.Is(err, ErrNotFound):
		status = "NF"
	case errors.Is(err, ErrTooLarge):
		c.bw.WriteString("SERVER_ERROR object too large for cache\r\n")
		return nil
	default:
		c.serverError(err)
		return nil
	}
	b := c.reserve(len(ktok) + 80)
	b = append(b, status...)
	if no > 0 {
		b = append(b, ' ')
		b = append(b, opaque[:no]...)
	}
	if retK {
		b = append(b, " k"...)
		b = append(b, ktok...)
	}
	if retC && err == nil {
		b = append(b, " c"...)
		b = appendUint(b, cas)
	}
	if retB {
		b = append(b, " b"...)
	}
	b = append(b, "\r\n"...)
	c.bw.Write(b)
	return nil
}

func (c *conn) metaDelete(tok [][]byte) {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	var a metaArgs
	flags := tok[2:]
	if !parseMeta(flags, mdFlags, &a) {
		c.bw.WriteString(a.errstr)
		return
	}
	key, ok := c.metaKey(tok[1], &a)
	if !ok {
		c.bw.WriteString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	err := c.s.Backend.Delete(c.ctx, key, a.cas)
	var status string
	switch {
	case err == nil:
		c.s.st.deleteHits.Add(1)
		if a.has('q') {
			return
		}
		status = "HD"
	case errors.Is(err, ErrNotFound):
		c.s.st.deleteMisses.Add(1)
		status = "NF"
	case errors.Is(err, ErrExists):
		status = "EX"
	default:
		c.serverError(err)
		return
	}
	b := c.reserve(2*len(tok[1]) + 64 + len(flags)*(maxOpaque+4))
	b = append(b, status...)
	b = appendRet(b, flags, tok[1], 0, &a)
	b = append(b, "\r\n"...)
	c.bw.Write(b)
}

func (c *conn) metaArith(tok [][]byte) {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	var a metaArgs
	flags := tok[2:]
	if !parseMeta(flags, maFlags, &a) {
		c.bw.WriteString(a.errstr)
		return
	}
	decr := false
	switch a.mode {
	case 0, 'I', 'i', '+':
	case 'D', 'd', '-':
		decr = true
	default:
		c.bw.WriteString("CLIENT_ERROR invalid mode for ma\r\n")
		return
	}
	key, ok := c.metaKey(tok[1], &a)
	if !ok {
		c.bw.WriteString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	var create *Item
	if a.has('N') {
		c.it = Item{Key: key, Value: appendUint(c.scr[:0], a.initial), Exptime: c.s.normExptime(a.vivify)}
		create = &c.it
	}
	v, cas, err := c.s.Backend.Incr(c.ctx, key, a.delta, decr, create)
	st := &c.s.st
	switch {
	case err == nil:
		if decr {
			st.decrHits.Add(1)
		} else {
			st.incrHits.Add(1)
		}
	case errors.Is(err, ErrNotFound):
		if decr {
			st.decrMisses.Add(1)
		} else {
			st.incrMisses.Add(1)
		}
		c.bw.WriteString("NF\r\n")
		return
	case errors.Is(err, ErrNonNumeric):
		c.bw.WriteString("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
		return
	case errors.Is(err, ErrExists):
		c.bw.WriteString("EX\r\n")
		return
	default:
		c.serverError(err)
		return
	}
	if a.has('q') && !a.has('v') {
		return
	}
	num := appendUint(c.scr[:0], v)
	b := c.reserve(2*len(tok[1]) + 96 + len(flags)*(maxOpaque+4))
	if a.has('v') {
		b = append(b, "VA "...)
		b = appendUint(b, uint64(len(num)))
	} else {
		b = append(b, "HD"...)
	}
	b = appendRet(b, flags, tok[1], cas, &a)
	b = append(b, "\r\n"...)
	if a.has('v') {
		b = append(b, num...)
		b = append(b, "\r\n"...)
	}
	c.bw.Write(b)
}

// metaDebug is `me <key>`, shaped like memcached's output.
func (c *conn) metaDebug(tok [][]byte) {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	key := tok[1]
	if len(key) > maxKeyLen {
		c.bw.WriteString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	err := c.get(key, false, 0)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		c.bw.WriteString("EN\r\n")
		return
	default:
		c.serverError(err)
		return
	}
	b := c.reserve(len(key) + 128)
	b = append(b, "ME "...)
	b = append(b, key...)
	b = append(b, " exp="...)
	b = appendInt(b, c.s.ttl(c.it.Exptime))
	b = append(b, " la=0 cas="...)
	b = appendUint(b, c.it.CAS)
	b = append(b, " fetch=no cls=1 size="...)
	b = appendUint(b, uint64(59+len(key)+len(c.it.Value)))
	b = append(b, "\r\n"...)
	c.bw.Write(b)
}
