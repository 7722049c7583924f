package memcache

import (
	"errors"
)

// Meta commands (memcached 1.6 protocol.txt "Meta Commands"). Every command
// accepts the flags memcached 1.6.18 parses for all of them (b c f h k l q
// s t u v C D F I J L M N O P R T; a token that flag takes is checked as
// memcached checks it) and ignores those it gives no meaning, as memcached
// does. What they do here:
//
//	mg <key> b c f h k l O q s t u v T N R E (h and l with an AccessBackend,
//	         else 0)
//	ms <key> <datalen> b c C E F I k O q s T M(E|A|P|R|S)
//	md <key> b C I T k O q
//	ma <key> b c k O q t v C D J M(I|+|D|-) N T
//	mn, me <key>
//
// Leases (a backend with LeaseBackend; without one, mg R, md I and ms I
// with C are refused as memcached refuses a flag it lacks, and W comes only
// with an N autovivify): mg hands the win token (W) to the request that
// autovivifies a missing item (N), that finds the item stale (X), or (R)
// that finds it expiring within the R token's seconds, once per version;
// later requests see Z until the item is replaced. md I marks an item
// stale and takes its token back; ms I with C stores a value computed from
// an older version (a lower CAS unique) marked stale.
//
// Return flags come back in request order; a base64 key comes back as
// "k<key> b". A reply without an item (mg EN, ma NF and EX) and every md
// reply carry only the O and k flags. q hides EN for mg, HD for ms and md, and the whole
// reply of a successful ma increment (HD or VA; an N autovivify is still
// answered); errors are always sent. More than 17 flags (16 for ms) are
// refused as "options flags (are) too long", as memcached does. The flag
// parser is in metaflags.go.

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
	lb := c.s.leases()
	key, ok := c.parseMeta(tok[1], flags, c.s.casFlags(leaseFlags(mgFlags, lb, 'R')), 'g', &a)
	if !ok {
		c.bw.WriteString(a.errstr)
		return
	}
	if opaqueTooLong(flags) {
		c.bw.WriteString(errOpaqueLong)
		return
	}
	st := &c.s.st
	touch := a.has('T')
	// memcached applies T where it stands among the flags: a t before it
	// shows the exptime the item had. Only then is it read first.
	oldExp, haveOld := int64(0), false
	if touch && flagBefore(flags, 't', 'T') && c.get(key, false, 0) == nil {
		oldExp, haveOld = c.it.Exptime, true
	}
	// h and l report what the backend knew of earlier reads before this
	// one, which counts as a read unless u is set.
	var hit bool
	var last int64
	var err error
	ab, _ := c.s.Backend.(AccessBackend)
	switch {
	case ab != nil && (a.has('h') || a.has('l')) && !touch:
		hit, last, err = c.getAccess(ab, key, !a.has('u'))
	case ab != nil && (a.has('h') || a.has('l')):
		if hit, last, err = c.getAccess(ab, key, false); err != nil {
			hit, last = false, 0
		}
		fallthrough
	default:
		err = c.get(key, touch, c.s.normExptime(a.ttl))
	}
	won, created := false, false
	if errors.Is(err, ErrNotFound) && a.has('N') {
		c.it = Item{Key: key, Value: (*c.out)[:0], Exptime: c.s.normExptime(lastTTL(flags, &a)), NewCAS: a.newCAS,
			TokenSent: true} // the win goes to this request
		var cas uint64
		cas, err = c.s.Backend.Store(c.ctx, ModeAdd, &c.it)
		if err == nil {
			c.it.CAS = cas
			won, created = true, true
			if ab != nil && !a.has('u') {
				// memcached counts the autovivifying mg as the new
				// item's first read.
				var tmp Item
				ab.GetAccess(c.ctx, key, true, nil, &tmp)
			}
		} else if errors.Is(err, ErrNotStored) {
			err = c.get(key, false, 0)
		}
	}
	if err == nil && !won && lb != nil {
		won, err = c.winLease(lb, key, &a)
	}
	switch {
	case err == nil:
		c.s.detail.note(key, detailHit)
		// memcached counts an mg with T that finds the item as a touch
		// only, and one that misses as a get only.
		if touch && !created {
			st.cmdTouch.Add(1)
			st.touchHits.Add(1)
		} else {
			st.cmdGet.Add(1)
			st.getHits.Add(1)
		}
	case errors.Is(err, ErrNotFound):
		st.cmdGet.Add(1)
		st.getMisses.Add(1)
		c.s.detail.note(key, detailGet)
		if !a.has('q') {
			c.metaMiss("EN", flags, tok[1], &a)
		}
		return
	default:
		st.cmdGet.Add(1)
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
			case created:
				exp = createdExptime(c.s, flags, f, &a)
			case haveOld && flagBefore(flags, 't', 'T'):
				exp = oldExp
			}
			b = append(b, " t"...)
			b = appendInt(b, c.s.ttl(exp))
		case 'h':
			if hit && !created {
				b = append(b, " h1"...)
			} else {
				b = append(b, " h0"...)
			}
		case 'l':
			b = append(b, " l"...)
			if last != 0 && !created {
				b = appendInt(b, max(c.s.now().Unix()-last, 0))
			} else {
				b = append(b, '0')
			}
		}
		b = appendRetFlag(b, f, tok[1], c.it.CAS, &a)
	}
	// As memcached: Z for a token out before this request, then X, then W.
	if c.it.TokenSent && !won && lb != nil {
		b = append(b, " Z"...)
	}
	if c.it.Stale && lb != nil {
		b = append(b, " X"...)
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

// winLease decides mg's win for the item just read into c.it: an item
// that is stale, or (R) expires before the R token's time, and has no
// token out, is won through lb, which checks again atomically. An item
// that changed meanwhile is read again and judged again (a few times at
// most); it may be gone (ErrNotFound). A claim that fails otherwise
// leaves the item served without W.
func (c *conn) winLease(lb LeaseBackend, key []byte, a *metaArgs) (bool, error) {
	for try := 0; try < 3; try++ {
		it := &c.it
		recache := a.has('R') && it.Exptime != 0 && it.Exptime < c.s.normExptime(a.recache)
		if it.TokenSent || !(it.Stale || recache) {
			return false, nil
		}
		cas, err := lb.Win(c.ctx, key, it.CAS)
		if err == nil {
			it.CAS = cas
			return true, nil
		}
		if errors.Is(err, ErrNotFound) {
			return false, err
		}
		if !errors.Is(err, ErrExists) {
			// The item was read; only the claim failed (a server
			// unreachable): serve it without the win rather than fail
			// the read, which would send every client to the backend.
			return false, nil
		}
		var lost *LeaseLostError
		if errors.As(err, &lost) && lost.TokenSent {
			// Another client won. Reading again could still give the
			// version just tried (a read may lag the win), so answer Z
			// now, with the value and CAS unique as read: a CAS unique
			// from after the win could pair with an older value.
			it.TokenSent = true
			return false, nil
		}
		if err := c.get(key, false, 0); err != nil {
			return false, err
		}
	}
	return false, nil
}

// getAccess reads key into c.it through ab, as c.get does.
func (c *conn) getAccess(ab AccessBackend, key []byte, bump bool) (bool, int64, error) {
	fetched, last, err := ab.GetAccess(c.ctx, key, bump, (*c.out)[:0], &c.it)
	if err == nil && len(c.it.Value) > cap(*c.out) {
		putBuf(c.out) // as in c.get: a buffer of its size class for the next read
		c.out = getBuf(len(c.it.Value))
	}
	return fetched, last, err
}

// leases returns the backend's LeaseBackend, or nil.
func (s *Server) leases() LeaseBackend {
	lb, _ := s.Backend.(LeaseBackend)
	return lb
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
	key, ok := c.parseMeta(tok[1], flags, c.s.casFlags(msFlags), 's', &a)
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
	case a.has('I') && a.has('C') && c.s.leases() == nil:
		// memcached would store an item whose CAS is older than C,
		// marked stale; this backend has no stale items.
		a.errstr = errInvalidFlag
	}
	if a.errstr != "" {
		c.bw.WriteString(a.errstr)
		return c.discard(vlen + 2)
	}
	c.s.st.cmdSet.Add(1)
	c.s.detail.note(key, detailSet)
	if c.tooLarge(key, vlen, a.flags) {
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
	if data == nil {
		c.bw.WriteString(outOfMemory)
		return c.discard(vlen + 2)
	}
	if err := c.readBody(data); err != nil {
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
			c.it.Stale = a.has('I') // set-to-invalid against an older CAS unique
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
	lb := c.s.leases()
	key, ok := c.parseMeta(tok[1], flags, leaseFlags(mdFlags, lb, 'I'), 'd', &a)
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
	} else if a.has('I') {
		// Marked stale, not deleted; T sets its exptime.
		err = lb.Invalidate(c.ctx, key, a.cas, a.has('T'), c.s.normExptime(a.ttl))
	} else {
		err = c.s.Backend.Delete(c.ctx, key, a.cas)
	}
	c.s.detail.note(key, detailDel)
	var status string
	switch {
	case err == nil:
		if !a.has('I') {
			c.s.st.deleteHits.Add(1)
		}
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
	case err == nil && r.Created:
		// memcached counts an ma that creates the item (N) neither as a
		// hit nor as a miss.
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
	var fetched bool
	var last int64
	var err error
	if ab, ok := c.s.Backend.(AccessBackend); ok {
		fetched, last, err = c.getAccess(ab, key, false)
	} else {
		err = c.get(key, false, 0)
	}
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
	b = append(b, " la="...)
	if last != 0 {
		b = appendInt(b, max(c.s.now().Unix()-last, 0))
	} else {
		b = append(b, '0')
	}
	b = append(b, " cas="...)
	b = appendUint(b, c.it.CAS)
	if fetched {
		b = append(b, " fetch=yes cls=1 size="...)
	} else {
		b = append(b, " fetch=no cls=1 size="...)
	}
	b = appendUint(b, uint64(59+len(key)+len(c.it.Value)))
	b = append(b, "\r\n"...)
	c.bw.Write(b)
}
