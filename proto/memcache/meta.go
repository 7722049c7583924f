package memcache

import (
	"encoding/base64"
	"errors"
	"io"
)

// Meta commands (memcached 1.6 protocol.txt "Meta Commands"). Every command
// accepts the flags memcached 1.6.18 parses for all of them (b c f h k l q
// s t u v C D F I J L M N O P R T; a token that flag takes is checked as
// memcached checks it) and ignores those it gives no meaning, as memcached
// does. What they do here:
//
//	mg <key> b c f h k l O q s t v T N E (h and l always report 0; E with N;
//	         R is refused: no recache wins, so no W/Z tokens)
//	ms <key> <datalen> b c C E F I k O q s T M(E|A|P|R|S) (I is refused
//	         together with C: there are no stale items)
//	md <key> b C k O q (I is refused: there are no stale items)
//	ma <key> b c k O q t v C D J M(I|+|D|-) N T
//	mn, me <key>
//
// Return flags come back in request order; a base64 key comes back as
// "k<key> b". A reply without an item (mg EN, ma NF and EX) carries only
// the O and k flags. q hides EN for mg, HD for ms and md, and the whole
// reply of a successful ma increment (HD or VA; an N autovivify is still
// answered); errors are always sent. More than 17 flags (16 for ms) are
// refused as "options flags (are) too long", as memcached does.

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

// metaCommon is the set of flags memcached 1.6.18 accepts on every meta
// command (its _meta_flag_preparse).
const metaCommon = "bcfhklqstuvCDFIJLMNOPRT"

var (
	mgFlags = flagMask(metaCommon+"E") &^ flagBit('R')
	msFlags = flagMask(metaCommon + "E")
	mdFlags = flagMask(metaCommon) &^ flagBit('I')
	maFlags = flagMask(metaCommon)
)

// maxOpaque is the longest O token memcached takes, without the O.
const maxOpaque = 31

// Most flags a meta command may carry (memcached's MFLAG_MAX_OPT_LENGTH,
// counted in tokens with the command, key and, for ms, the data length).
const (
	maxMetaFlags   = 17
	maxMetaSetFlag = 16
)

func hasFlag(flags [][]byte, ch byte) bool {
	for _, f := range flags {
		if f[0] == ch {
			return true
		}
	}
	return false
}

// metaArgs holds the parsed flags of one meta command.
type metaArgs struct {
	mask    uint64
	ttl     int64  // T
	newCAS  uint64 // E
	vivify  int64  // N
	cas     uint64
	flags   uint32
	delta   uint64
	initial uint64
	mode    byte
	errstr  string
}

func (a *metaArgs) has(ch byte) bool { return a.mask&flagBit(ch) != 0 }

// Error lines of flag parsing, per command as memcached 1.6.18 words them.
const (
	errInvalidFlag = "CLIENT_ERROR invalid flag\r\n"
	errDupFlag     = "CLIENT_ERROR duplicate flag\r\n"
	errBadToken    = "CLIENT_ERROR bad token in command line format\r\n"
	errBadFormat   = "CLIENT_ERROR bad command line format\r\n"
	errInvalidDup  = "CLIENT_ERROR invalid or duplicate flag\r\n"
	errDecodeKey   = "CLIENT_ERROR error decoding key\r\n"
	errOpaqueLong  = "CLIENT_ERROR opaque token too long\r\n"
	errFlagsLong   = "CLIENT_ERROR options flags too long\r\n"
	errMgFlagsLong = "CLIENT_ERROR options flags are too long\r\n"
)

// parseMeta parses the key token and the flag tokens of command cmd ('g',
// 's', 'd', 'a') against the allowed mask, as memcached 1.6.18's
// _meta_flag_preparse does: an unknown or repeated flag stops it at once
// ("invalid flag", "duplicate flag"); a bad token, and a base64 key (b)
// that does not decode, are noted where they come and the last one noted
// is the answer. md and ma answer all of these with "invalid or duplicate
// flag". It returns the key, decoded if b is set (then in c.b64key), or
// false with a.errstr set. The O token's length is checked later (see
// opaqueTooLong), as memcached does.
func (c *conn) parseMeta(keyTok []byte, flags [][]byte, allowed uint64, cmd byte, a *metaArgs) ([]byte, bool) {
	*a = metaArgs{delta: 1}
	fail := func(s string) ([]byte, bool) {
		if cmd == 'd' || cmd == 'a' {
			s = errInvalidDup
		}
		a.errstr = s
		return nil, false
	}
	key := keyTok
	bad := ""
	for _, f := range flags {
		bit := flagBit(f[0])
		if bit == 0 || allowed&bit == 0 {
			return fail(errInvalidFlag)
		}
		if a.mask&bit != 0 {
			return fail(errDupFlag)
		}
		a.mask |= bit
		arg := f[1:]
		ok := true
		switch f[0] {
		case 'b':
			var e string
			if key, e = c.decodeKey(keyTok); e != "" {
				bad = e
			}
		case 'T':
			a.ttl, ok = parseCInt32(arg)
		case 'N':
			a.vivify, ok = parseCInt32(arg)
		case 'R':
			_, ok = parseCInt32(arg)
		case 'C':
			a.cas, ok = parseCUint(arg)
		case 'E':
			a.newCAS, ok = parseCUint(arg)
		case 'F':
			// memcached marks a bad F token without a message of its
			// own: the answer is the last message noted, or its
			// default "bad command line format".
			v, fok := parseCUint(arg)
			if !fok && bad == "" {
				bad = errBadFormat
			}
			a.flags = uint32(v)
		case 'D':
			if a.delta, ok = parseCUint(arg); !ok {
				bad, ok = "CLIENT_ERROR invalid numeric delta value\r\n", true
			}
		case 'J':
			if a.initial, ok = parseCUint(arg); !ok {
				bad, ok = "CLIENT_ERROR invalid numeric initial value\r\n", true
			}
		case 'M':
			if len(arg) != 1 {
				bad = "CLIENT_ERROR incorrect length for M token\r\n"
			} else {
				a.mode = arg[0]
			}
		}
		if !ok {
			bad = errBadToken
		}
	}
	if bad != "" {
		return fail(bad)
	}
	if !a.has('b') && len(key) > maxKeyLen {
		a.errstr = errBadFormat
		return nil, false
	}
	return key, true
}

// decodeKey decodes a base64 key token into c.b64key, or returns the
// error line to send.
func (c *conn) decodeKey(tok []byte) ([]byte, string) {
	if base64.StdEncoding.DecodedLen(len(tok)) > len(c.b64key)+3 {
		return nil, errBadFormat
	}
	var tmp [maxKeyLen + 3]byte
	n, err := base64.StdEncoding.Decode(tmp[:], tok)
	if err != nil || n == 0 {
		return nil, errDecodeKey
	}
	if n > maxKeyLen {
		return nil, errBadFormat
	}
	copy(c.b64key[:], tmp[:n])
	return c.b64key[:n], ""
}

// opaqueTooLong reports whether an O token is longer than memcached takes.
// memcached checks it only once the flags parsed (and, for ms and ma, the
// mode), as this package does.
func opaqueTooLong(flags [][]byte) bool {
	for _, f := range flags {
		if f[0] == 'O' && len(f)-1 > maxOpaque {
			return true
		}
	}
	return false
}

// metaPrecheck answers what memcached checks of a mg, md or ma line before
// its flags: a key token over 250 bytes (base64 or not), then too many
// flags. It returns false after writing the error.
func (c *conn) metaPrecheck(tok [][]byte, tooLong string) bool {
	switch {
	case len(tok[1]) > maxKeyLen:
		c.bw.WriteString(errBadFormat)
	case len(tok)-2 > maxMetaFlags:
		c.bw.WriteString(tooLong)
	default:
		return true
	}
	return false
}

// metaTooManyTokens answers a meta command line of more tokens than the
// tokenizer keeps (tok holds the first maxTokens), as memcached answers
// it: mg, ms, md and ma refuse it (ms without reading its data), mn and
// me ignore the extra tokens. It reports whether cmd was a meta command.
func (c *conn) metaTooManyTokens(cmd []byte, tok [][]byte) bool {
	switch string(cmd) {
	case "mg":
		c.s.st.cmdMeta.Add(1)
		c.metaPrecheck(tok, errMgFlagsLong)
	case "md", "ma":
		c.s.st.cmdMeta.Add(1)
		c.metaPrecheck(tok, errFlagsLong)
	case "ms":
		c.s.st.cmdMeta.Add(1)
		if msKeyTooLong(tok) {
			c.bw.WriteString(errBadFormat)
		} else {
			c.bw.WriteString(errFlagsLong)
		}
	case "mn":
		c.s.st.cmdMeta.Add(1)
		c.bw.WriteString("MN\r\n")
	case "me":
		c.metaDebug(tok)
	default:
		return false
	}
	return true
}

// msKeyTooLong reports whether the key token of ms line tok is refused
// before its data length is known (so the data is then read as a command):
// over 250 bytes, or over what 250 bytes take in base64 with b.
func msKeyTooLong(tok [][]byte) bool {
	return len(tok[1]) > maxKeyLen*4/3+4 || (len(tok[1]) > maxKeyLen && !hasFlag(tok[3:], 'b'))
}

// appendMissRet appends the return flags memcached 1.6.18 sends without an
// item (mg EN, ma NF and EX) and on every md reply: only O and k, in
// request order.
func appendMissRet(b []byte, flags [][]byte, keyTok []byte, a *metaArgs) []byte {
	for _, f := range flags {
		if f[0] == 'O' || f[0] == 'k' {
			b = appendRetFlag(b, f, keyTok, 0, a)
		}
	}
	return b
}

// appendRetFlag appends the return flag of request flag f, if it has one
// that does not depend on the item. A key that came base64-encoded (b) is
// returned as "k<base64> b", the b right after the key as memcached does.
func appendRetFlag(b []byte, f []byte, keyTok []byte, cas uint64, a *metaArgs) []byte {
	switch f[0] {
	case 'O':
		b = append(b, ' ')
		b = append(b, f...)
	case 'k':
		b = append(b, " k"...)
		b = append(b, keyTok...)
		if a.has('b') {
			b = append(b, " b"...)
		}
	case 'c':
		b = append(b, " c"...)
		b = appendUint(b, cas)
	}
	return b
}

func (c *conn) metaGet(tok [][]byte) {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	if !c.metaPrecheck(tok, errMgFlagsLong) {
		return
	}
	var a metaArgs
	flags := tok[2:]
	key, ok := c.parseMeta(tok[1], flags, mgFlags, 'g', &a)
	if !ok {
		c.bw.WriteString(a.errstr)
		return
	}
	if opaqueTooLong(flags) {
		c.bw.WriteString(errOpaqueLong)
		return
	}
	st := &c.s.st
	st.cmdGet.Add(1)
	touch := a.has('T')
	if touch {
		st.cmdTouch.Add(1)
	}
	// memcached applies T where it stands among the flags: a t before it
	// shows the exptime the item had. Only then is it read first.
	oldExp, haveOld := int64(0), false
	if touch && flagBefore(flags, 't', 'T') && c.get(key, false, 0) == nil {
		oldExp, haveOld = c.it.Exptime, true
	}
	err := c.get(key, touch, c.s.normExptime(a.ttl))
	won := false
	if errors.Is(err, ErrNotFound) && a.has('N') {
		c.it = Item{Key: key, Value: (*c.out)[:0], Exptime: c.s.normExptime(lastTTL(flags, &a)), NewCAS: a.newCAS}
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
			c.metaMiss("EN", flags, tok[1], &a)
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
			// memcached creates the item without an exptime and applies
			// N and T as it meets them, so a t before them shows -1.
			exp := c.it.Exptime
			switch {
			case won:
				exp = createdExptime(c.s, flags, f, &a)
			case haveOld && flagBefore(flags, 't', 'T'):
				exp = oldExp
			}
			b = append(b, " t"...)
			b = appendInt(b, c.s.ttl(exp))
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
	if len(tok) < 3 || msKeyTooLong(tok) {
		// memcached rejects these before it knows the data length, so the
		// data line is then read as a command.
		c.bw.WriteString(errBadFormat)
		return nil
	}
	if len(tok)-3 > maxMetaSetFlag {
		c.bw.WriteString(errFlagsLong) // the data, too, is read as a command
		return nil
	}
	vlen, ok := parseCInt32(tok[2])
	if !ok || vlen < 0 || vlen > maxDataLen {
		c.bw.WriteString(errBadFormat)
		return nil
	}
	var a metaArgs
	flags := tok[3:]
	mode := ModeSet
	key, ok := c.parseMeta(tok[1], flags, msFlags, 's', &a)
	if ok {
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
			a.errstr = "CLIENT_ERROR invalid mode for ms M token\r\n"
		}
	}
	switch {
	case a.errstr != "":
	case opaqueTooLong(flags):
		a.errstr = errOpaqueLong
	case a.has('I') && a.has('C'):
		// memcached would store an item whose CAS is older than C,
		// marked stale; there are no stale items here.
		a.errstr = errInvalidFlag
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
	// The return flags echo tokens that live in the read buffer, which
	// reading the data overwrites: render them now, in request order, with
	// the CAS unique (known only later) inserted at casAt.
	ret := c.ret[:0]
	casAt := -1
	for _, f := range flags {
		if f[0] == 'c' {
			if casAt < 0 {
				casAt = len(ret)
			}
			continue
		}
		ret = appendRetFlag(ret, f, tok[1], 0, &a)
	}
	c.ret = ret
	data := c.inBuf(int(vlen) + 2)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return err
	}
	if data[vlen] != '\r' || data[vlen+1] != '\n' {
		c.bw.WriteString("CLIENT_ERROR bad data chunk\r\n")
		return nil
	}
	c.it = Item{Key: k, Value: data[:vlen], Flags: a.flags, Exptime: c.s.normExptime(a.ttl), NewCAS: a.newCAS}
	if a.has('C') {
		// As memcached: C makes set and replace a cas, is ignored by add
		// and makes append and prepend conditional.
		switch mode {
		case ModeSet, ModeReplace:
			mode = ModeCAS
			c.it.CAS = a.cas
		case ModeAppend, ModePrepend:
			c.it.CAS = a.cas
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
	b := c.reserve(len(ret) + 32)
	b = append(b, status...)
	if casAt < 0 {
		b = append(b, ret...)
	} else {
		b = append(b, ret[:casAt]...)
		b = append(b, " c"...)
		b = appendUint(b, cas)
		b = append(b, ret[casAt:]...)
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
	if !c.metaPrecheck(tok, errFlagsLong) {
		return
	}
	var a metaArgs
	flags := tok[2:]
	key, ok := c.parseMeta(tok[1], flags, mdFlags, 'd', &a)
	if !ok {
		c.bw.WriteString(a.errstr)
		return
	}
	if opaqueTooLong(flags) {
		c.bw.WriteString(errOpaqueLong)
		return
	}
	var err error
	if a.has('C') && a.cas == 0 {
		// memcached compares with 0 and no item has CAS unique 0;
		// Backend.Delete takes 0 as "no compare".
		if err = c.get(key, false, 0); err == nil {
			err = ErrExists
		}
	} else {
		err = c.s.Backend.Delete(c.ctx, key, a.cas)
	}
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
	c.metaMiss(status, flags, tok[1], &a) // md returns only O and k
}

func (c *conn) metaArith(tok [][]byte) {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	if !c.metaPrecheck(tok, errFlagsLong) {
		return
	}
	var a metaArgs
	flags := tok[2:]
	key, ok := c.parseMeta(tok[1], flags, maFlags, 'a', &a)
	if !ok {
		c.bw.WriteString(a.errstr)
		return
	}
	decr := false
	switch a.mode {
	case 0, 'I', 'i', '+':
	case 'D', 'd', '-':
		decr = true
	default:
		c.bw.WriteString("CLIENT_ERROR invalid mode for ma M token\r\n")
		return
	}
	if opaqueTooLong(flags) {
		// memcached does the arithmetic first and then refuses to
		// answer; here nothing is done.
		c.bw.WriteString(errOpaqueLong)
		return
	}
	ar := Arith{Delta: a.delta, Decr: decr, CAS: a.cas, Touch: a.has('T'), Exptime: c.s.normExptime(a.ttl)}
	if a.has('N') {
		c.it = Item{Key: key, Value: appendUint(c.scr[:0], a.initial), Exptime: c.s.normExptime(lastTTL(flags, &a))}
		ar.Create = &c.it
	}
	var r ArithResult
	ok, err := c.arith(key, &ar, a.has('t'), &r)
	if !ok {
		c.bw.WriteString(errInvalidDup) // the backend cannot do C, T or t
		return
	}
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
		c.metaMiss("NF", flags, tok[1], &a)
		return
	case errors.Is(err, ErrNonNumeric):
		c.bw.WriteString("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
		return
	case errors.Is(err, ErrExists):
		c.metaMiss("EX", flags, tok[1], &a)
		return
	default:
		c.serverError(err)
		return
	}
	if a.has('q') && !r.Created {
		return // memcached's q skips the whole reply of an increment, not of an N autovivify
	}
	num := appendUint(c.scr[:0], r.Value)
	b := c.reserve(2*len(tok[1]) + 96 + len(flags)*(maxOpaque+4))
	if a.has('v') {
		b = append(b, "VA "...)
		b = appendUint(b, uint64(len(num)))
	} else {
		b = append(b, "HD"...)
	}
	// memcached walks the flags in order, applying T (and N to a created
	// item) as it meets them: a t shows the exptime at that point.
	exp := r.OldExptime
	for _, f := range flags {
		switch f[0] {
		case 'T':
			exp = ar.Exptime
		case 'N':
			if r.Created {
				exp = c.s.normExptime(a.vivify)
			}
		case 't':
			b = append(b, " t"...)
			b = appendInt(b, c.s.ttl(exp))
		default:
			b = appendRetFlag(b, f, tok[1], r.CAS, &a)
		}
	}
	b = append(b, "\r\n"...)
	if a.has('v') {
		b = append(b, num...)
		b = append(b, "\r\n"...)
	}
	c.bw.Write(b)
}

// arith runs ar through the backend's ArithBackend, or through Incr when it
// has none and ar needs no compare, touch or old exptime (wantExp). ok is
// false when the backend cannot do ar. Without ArithBackend, r.Created is
// a guess: a result equal to the initial value is taken as a create.
func (c *conn) arith(key []byte, ar *Arith, wantExp bool, r *ArithResult) (ok bool, err error) {
	if ab, isArith := c.s.Backend.(ArithBackend); isArith {
		*r = ArithResult{}
		return true, ab.Arith(c.ctx, key, ar, r)
	}
	if ar.CAS != 0 || ar.Touch || wantExp {
		return false, nil
	}
	v, cas, err := c.s.Backend.Incr(c.ctx, key, ar.Delta, ar.Decr, ar.Create)
	*r = ArithResult{Value: v, CAS: cas}
	if err == nil && ar.Create != nil {
		init, _ := parseCUint(ar.Create.Value)
		r.Created = v == init
	}
	return true, err
}

// flagBefore reports whether flag x comes before flag y in flags (both
// present).
func flagBefore(flags [][]byte, x, y byte) bool {
	for _, f := range flags {
		switch f[0] {
		case x:
			return hasFlag(flags, y)
		case y:
			return false
		}
	}
	return false
}

// lastTTL is the exptime memcached gives an item that mg or ma N creates:
// it creates it without one and applies N and T in flag order, so the
// later of the two wins.
func lastTTL(flags [][]byte, a *metaArgs) int64 {
	e := a.vivify
	for _, f := range flags {
		switch f[0] {
		case 'T':
			e = a.ttl
		case 'N':
			e = a.vivify
		}
	}
	return e
}

// createdExptime is the exptime (absolute) a created item has when
// memcached meets flag at in flags: 0 until N or T set it.
func createdExptime(s *Server, flags [][]byte, at []byte, a *metaArgs) int64 {
	var e int64
	for _, f := range flags {
		if &f[0] == &at[0] {
			break
		}
		switch f[0] {
		case 'T':
			e = s.normExptime(a.ttl)
		case 'N':
			e = s.normExptime(a.vivify)
		}
	}
	return e
}

// metaMiss writes status with the O and k return flags, for a reply that
// has no item and for md.
func (c *conn) metaMiss(status string, flags [][]byte, keyTok []byte, a *metaArgs) {
	b := c.reserve(2*len(keyTok) + 16 + len(flags)*(maxOpaque+4))
	b = append(b, status...)
	b = appendMissRet(b, flags, keyTok, a)
	b = append(b, "\r\n"...)
	c.bw.Write(b)
}

// metaDebug is `me <key>`, shaped like memcached's output.
func (c *conn) metaDebug(tok [][]byte) {
	c.s.st.cmdMeta.Add(1)
	if len(tok) < 2 {
		c.bw.WriteString(errBadFormat)
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
