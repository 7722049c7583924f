package memcache

import (
	"bytes"
	"errors"
)

// serveText runs the text (and meta) protocol until an error or quit.
func (c *conn) serveText() error {
	for {
		c.atStart = true
		line, err := c.readLine()
		c.atStart = false
		serr := c.settle() // before anything else touches the reply buffers
		if err == nil && serr != nil {
			return serr // writing the last reply failed
		}
		if err != nil {
			if err == errLineTooLong {
				c.s.st.protoErrs.Add(1)
				c.bw.WriteString("CLIENT_ERROR line too long\r\n")
			}
			return err
		}
		if i := bytes.IndexByte(line, 0); i >= 0 {
			// memcached parses the line as a C string: a NUL ends it
			// ("set a\x00b 0 0 1" is "set a", an ERROR, and its data
			// line another), so no key holds a NUL.
			line = line[:i]
		}
		c.noreply, c.lone = false, false
		if c.resetWithPipeline() {
			return errPeerReset
		}
		if err := c.dispatchText(line); err != nil {
			return err
		}
		if !c.as.pending && c.werr != nil {
			return c.werr // the client is gone: serve nothing more
		}
		// A request still pending may be served again by its fallback,
		// which reads c.it (whose value is in c.in) and owns c.out: they
		// go back to the pools only once it is done.
		if cap(*c.in) > 32<<10 || c.long != nil || (!c.as.pending && cap(*c.out) > 32<<10) {
			if err := c.settle(); err != nil {
				return err
			}
			c.shrink()
		}
	}
}

func (c *conn) dispatchText(line []byte) error {
	cmd, rest := nextToken(line)
	switch string(cmd) {
	case "get":
		return c.textGet(rest, false, false)
	case "gets":
		return c.textGet(rest, true, false)
	case "gat":
		return c.textGet(rest, false, true)
	case "gats":
		return c.textGet(rest, true, true)
	}
	n := c.tokenize(line)
	if n > maxTokens {
		return c.tooManyTokens(cmd)
	}
	tok := c.tok[:n]
	switch string(cmd) {
	case "set":
		return c.textStore(ModeSet, tok)
	case "add":
		return c.textStore(ModeAdd, tok)
	case "replace":
		return c.textStore(ModeReplace, tok)
	case "append":
		return c.textStore(ModeAppend, tok)
	case "prepend":
		return c.textStore(ModePrepend, tok)
	case "cas":
		return c.textStore(ModeCAS, tok)
	case "incr":
		c.textIncr(false, tok)
	case "decr":
		c.textIncr(true, tok)
	case "delete":
		c.textDelete(tok)
	case "touch":
		c.textTouch(tok)
	case "mg":
		c.metaGet(tok)
	case "ms":
		return c.metaSet(tok)
	case "md":
		c.metaDelete(tok)
	case "ma":
		c.metaArith(tok)
	case "mn":
		c.s.st.cmdMeta.Add(1)
		c.bw.WriteString("MN\r\n")
	case "me":
		c.metaDebug(tok)
	case "version":
		c.bw.WriteString("VERSION ")
		c.bw.WriteString(c.s.version())
		c.bw.WriteString("\r\n")
	case "quit":
		return errQuit
	case "flush_all":
		c.textFlush(tok)
	case "stats":
		c.textStats(tok)
	case "verbosity":
		if n < 2 || n > 3 {
			c.writeString("ERROR\r\n")
			return nil
		}
		c.noreply = string(tok[n-1]) == "noreply"
		if _, ok := parseCUint(tok[1]); !ok {
			c.writeString("CLIENT_ERROR bad command line format\r\n")
			return nil
		}
		c.writeString("OK\r\n")
	case "shutdown":
		// memcached without -A; a kumo cluster is stopped by its operator.
		c.writeString("ERROR: shutdown not enabled\r\n")
	case "cache_memlimit":
		if n < 2 || n > 3 {
			c.writeString("ERROR\r\n")
			return nil
		}
		c.noreply = string(tok[n-1]) == "noreply"
		c.cacheMemlimit(tok[1])
	default:
		c.s.st.protoErrs.Add(1)
		if n > 0 && bytes.HasPrefix(tok[n-1], []byte("HTTP/")) {
			// An HTTP request line ("GET / HTTP/1.1"): memcached hangs up
			// rather than answer each header line with an ERROR. (It also
			// drops replies to earlier requests of the same read; those
			// are written here, so that they do not depend on how the
			// input was split into reads.)
			return errQuit
		}
		c.bw.WriteString("ERROR\r\n")
	}
	return nil
}

// textGet serves get, gets, gat and gats; rest is the line after the
// command name.
func (c *conn) textGet(rest []byte, withCAS, touch bool) error {
	var exptime int64
	if touch {
		et, r := nextToken(rest)
		if len(et) == 0 {
			c.bw.WriteString("ERROR\r\n")
			return nil
		}
		e, ok := parseCInt32(et)
		if !ok {
			c.bw.WriteString("CLIENT_ERROR invalid exptime argument\r\n")
			return nil
		}
		exptime = c.s.normExptime(e)
		rest = r
	}
	nkeys := 0
	for r := rest; ; {
		k, r2 := nextToken(r)
		if len(k) == 0 {
			break
		}
		if len(k) > maxKeyLen {
			c.bw.WriteString("CLIENT_ERROR bad command line format\r\n")
			return nil
		}
		nkeys++
		r = r2
	}
	if nkeys == 0 && !touch {
		c.bw.WriteString("ERROR\r\n")
		return nil
	}
	st := &c.s.st
	if nkeys == 1 && !touch {
		key, _ := nextToken(rest)
		st.cmdGet.Add(1)
		if c.getAsync(key, withCAS) {
			return nil
		}
		if c.windowed() {
			c.pipelined(key, withCAS, winGet, winSet{})
			return nil
		}
		if c.getOne(key, withCAS, false, 0) {
			c.bw.WriteString("END\r\n")
		}
		return nil
	}
	if !touch && c.as.be != nil {
		if c.getMany(rest, withCAS) {
			c.bw.WriteString("END\r\n")
		}
		return nil
	}
	for r := rest; ; {
		key, r2 := nextToken(r)
		if len(key) == 0 {
			break
		}
		r = r2
		if touch {
			st.cmdTouch.Add(1) // memcached counts a gat as a touch only
		} else {
			st.cmdGet.Add(1)
		}
		if !c.getOne(key, withCAS, touch, exptime) {
			return nil
		}
	}
	c.bw.WriteString("END\r\n")
	return nil
}

// getOne gets key (touching it if touch) and writes its VALUE lines, or
// nothing for a miss; it counts hits and misses. On a backend error it
// writes SERVER_ERROR and returns false: the reply ends there.
func (c *conn) getOne(key []byte, withCAS, touch bool, exptime int64) bool {
	st := &c.s.st
	err := c.get(key, touch, exptime)
	switch {
	case err == nil:
		c.s.detail.note(key, detailHit)
		if touch {
			st.touchHits.Add(1)
		} else {
			st.getHits.Add(1)
		}
		c.writeValue(key, withCAS)
	case errors.Is(err, ErrNotFound):
		c.s.detail.note(key, detailGet)
		if touch {
			st.touchMisses.Add(1)
		} else {
			st.getMisses.Add(1)
		}
	default:
		c.serverError(err)
		return false
	}
	return true
}

func (c *conn) writeValue(key []byte, withCAS bool) { c.writeItem(key, &c.it, withCAS) }

// writeItem writes the VALUE line and data block of it under key.
func (c *conn) writeItem(key []byte, it *Item, withCAS bool) {
	b := c.reserve(len(key) + 64)
	b = append(b, "VALUE "...)
	b = append(b, key...)
	b = append(b, ' ')
	b = appendUint(b, uint64(it.Flags))
	b = append(b, ' ')
	b = appendUint(b, uint64(len(it.Value)))
	if withCAS {
		b = append(b, ' ')
		b = appendUint(b, it.CAS)
	}
	b = append(b, "\r\n"...)
	c.bw.Write(b)
	c.bw.Write(it.Value)
	c.bw.WriteString("\r\n")
}

// tooLarge reports whether a value of n bytes under key exceeds the limit.
func (c *conn) tooLarge(key []byte, n int64, flags uint32) bool {
	return ItemSize(len(key), n, flags) > int64(c.s.maxItem())
}

// textStore serves set, add, replace, append, prepend and cas.
func (c *conn) textStore(mode StoreMode, tok [][]byte) error {
	want := 5
	if mode == ModeCAS {
		want = 6
	}
	n := len(tok)
	if n != want && n != want+1 {
		c.bw.WriteString("ERROR\r\n")
		return nil
	}
	// As memcached's set_noreply_maybe: a last token "noreply" silences
	// the reply even where it is in the place of another argument.
	c.noreply = string(tok[n-1]) == "noreply"
	key := tok[1]
	flags, ok1 := parseCUint(tok[2]) // memcached keeps the low 32 bits
	exp, ok2 := parseCInt32(tok[3])
	vlen, ok3 := parseCInt32(tok[4])
	var cas uint64
	ok4 := true
	if mode == ModeCAS {
		cas, ok4 = parseCUint(tok[5])
	}
	if len(key) > maxKeyLen || !ok1 || !ok2 || !ok3 || !ok4 || vlen < 0 || vlen > maxDataLen {
		c.writeString("CLIENT_ERROR bad command line format\r\n")
		return nil
	}
	c.s.st.cmdSet.Add(1)
	c.s.detail.note(key, detailSet)
	if c.tooLarge(key, vlen, uint32(flags)) {
		c.s.st.storeTooLarge.Add(1)
		c.writeString("SERVER_ERROR object too large for cache\r\n")
		if mode == ModeSet {
			// As memcached: a failed set must not leave the old value behind.
			c.s.Backend.Delete(c.ctx, key, 0)
		}
		return c.discard(vlen + 2)
	}
	k := append(c.keybuf[:0], key...)
	data := c.inBuf(int(vlen) + 2)
	if data == nil {
		c.writeString(outOfMemory)
		if mode == ModeSet {
			c.s.Backend.Delete(c.ctx, k, 0) // as for a value too large
		}
		return c.discard(vlen + 2)
	}
	if err := c.readBody(data); err != nil {
		return err
	}
	if data[vlen] != '\r' || data[vlen+1] != '\n' {
		c.s.st.protoErrs.Add(1)
		c.writeString("CLIENT_ERROR bad data chunk\r\n")
		return nil
	}
	c.it = Item{Key: k, Value: data[:vlen], Flags: uint32(flags), Exptime: c.s.normExptime(exp), CAS: cas}
	if mode == ModeSet && c.setAsync() {
		return nil
	}
	if mode != ModeCAS && c.windowed() {
		c.pipelined(k, false, winStore, winSet{it: c.it, mode: mode}) // more requests behind it: a window
		return nil
	}
	_, err := c.s.Backend.Store(c.ctx, mode, &c.it)
	c.storeReply(err, mode == ModeCAS)
	return nil
}

func (c *conn) storeReply(err error, isCAS bool) {
	st := &c.s.st
	switch {
	case err == nil:
		if isCAS {
			st.casHits.Add(1)
		}
		c.writeString("STORED\r\n")
	case errors.Is(err, ErrNotStored):
		c.writeString("NOT_STORED\r\n")
	case errors.Is(err, ErrExists):
		st.casBadval.Add(1)
		c.writeString("EXISTS\r\n")
	case errors.Is(err, ErrNotFound):
		st.casMisses.Add(1)
		c.writeString("NOT_FOUND\r\n")
	case errors.Is(err, ErrTooLarge):
		c.writeString("SERVER_ERROR object too large for cache\r\n")
	default:
		c.serverError(err)
	}
}

func (c *conn) textIncr(decr bool, tok [][]byte) {
	n := len(tok)
	if n != 3 && n != 4 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	// set_noreply_maybe: "incr k noreply" silences its delta error too.
	c.noreply = string(tok[n-1]) == "noreply"
	key := tok[1]
	if len(key) > maxKeyLen {
		c.writeString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	delta, ok := parseCUint(tok[2])
	if !ok {
		c.writeString("CLIENT_ERROR invalid numeric delta argument\r\n")
		return
	}
	if c.windowed() && (n == 3 || string(tok[3]) == "noreply") {
		// More requests behind it: a window.
		c.pipelined(key, false, winIncr, winSet{it: Item{Key: key}, delta: delta, decr: decr})
		return
	}
	v, _, err := c.s.Backend.Incr(c.ctx, key, delta, decr, nil)
	c.incrReply(decr, v, err)
}

// incrReply answers an incr or decr that ended with v or err.
func (c *conn) incrReply(decr bool, v uint64, err error) {
	st := &c.s.st
	switch {
	case err == nil:
		if decr {
			st.decrHits.Add(1)
		} else {
			st.incrHits.Add(1)
		}
		if !c.noreply {
			b := c.reserve(32)
			b = appendUint(b, v)
			b = append(b, "\r\n"...)
			c.bw.Write(b)
		}
	case errors.Is(err, ErrNotFound):
		if decr {
			st.decrMisses.Add(1)
		} else {
			st.incrMisses.Add(1)
		}
		c.writeString("NOT_FOUND\r\n")
	case errors.Is(err, ErrNonNumeric):
		c.writeString("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	default:
		c.serverError(err)
	}
}

func (c *conn) textDelete(tok [][]byte) {
	n := len(tok)
	if n < 2 || n > 4 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	if n > 2 {
		holdZero := string(tok[2]) == "0"
		c.noreply = string(tok[n-1]) == "noreply"
		if !(n == 3 && (holdZero || c.noreply)) && !(n == 4 && holdZero && c.noreply) {
			c.writeString("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n")
			return
		}
	}
	key := tok[1]
	if len(key) > maxKeyLen {
		c.writeString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	if c.windowed() {
		c.pipelined(key, false, winDelete, winSet{}) // more requests behind it: a window
		return
	}
	c.deleteReply(key, c.s.Backend.Delete(c.ctx, key, 0))
}

// deleteReply counts and writes the reply to a delete of key whose outcome
// is err.
func (c *conn) deleteReply(key []byte, err error) {
	c.s.detail.note(key, detailDel)
	switch {
	case err == nil:
		c.s.st.deleteHits.Add(1)
		c.writeString("DELETED\r\n")
	case errors.Is(err, ErrNotFound):
		c.s.st.deleteMisses.Add(1)
		c.writeString("NOT_FOUND\r\n")
	default:
		c.serverError(err)
	}
}

func (c *conn) textTouch(tok [][]byte) {
	n := len(tok)
	if n != 3 && n != 4 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	c.noreply = string(tok[n-1]) == "noreply" // also "touch k noreply", as memcached
	key := tok[1]
	if len(key) > maxKeyLen {
		c.writeString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	e, ok := parseCInt32(tok[2])
	if !ok {
		c.writeString("CLIENT_ERROR invalid exptime argument\r\n")
		return
	}
	c.s.st.cmdTouch.Add(1)
	exp := c.s.normExptime(e)
	if c.windowed() {
		// More requests behind it: a window.
		c.pipelined(key, false, winTouch, winSet{it: Item{Key: key, Exptime: exp}})
		return
	}
	c.touchReply(c.s.Backend.Touch(c.ctx, key, exp))
}

// touchReply answers a touch that ended with err.
func (c *conn) touchReply(err error) {
	switch {
	case err == nil:
		c.s.st.touchHits.Add(1)
		c.writeString("TOUCHED\r\n")
	case errors.Is(err, ErrNotFound):
		c.s.st.touchMisses.Add(1)
		c.writeString("NOT_FOUND\r\n")
	default:
		c.serverError(err)
	}
}

// flushDelay turns a flush_all argument into a delay in seconds. memcached
// sets its oldest_live to realtime(exptime) - 1: once its clock reaches
// that second, it hides every item stored up to the end of it, that is
// before the deadline. So "flush_all 1" (a deadline at most a second
// away) acts at once, and a later deadline acts then, on everything
// stored before it; memcached hides those a second early already, while
// kumo serves them until the deadline.
func (s *Server) flushDelay(e int64) int64 {
	var d int64
	switch {
	case e <= 0:
		return 0
	case e <= relativeMax:
		d = e
	default:
		d = e - s.now().Unix()
	}
	if d <= 1 {
		return 0
	}
	return d
}

func (c *conn) textFlush(tok [][]byte) {
	n := len(tok)
	if n > 3 {
		c.bw.WriteString("ERROR\r\n")
		return
	}
	c.noreply = string(tok[n-1]) == "noreply"
	var e int64
	if n == 3 || (n == 2 && !c.noreply) {
		var ok bool
		if e, ok = parseCInt32(tok[1]); !ok {
			c.writeString("CLIENT_ERROR invalid exptime argument\r\n")
			return
		}
	}
	c.s.st.cmdFlush.Add(1)
	if err := c.s.Backend.FlushAll(c.ctx, c.s.flushDelay(e)); err != nil {
		c.serverError(err)
		return
	}
	c.writeString("OK\r\n")
}

func (c *conn) textStats(tok [][]byte) {
	add := func(name, value string) {
		c.bw.WriteString("STAT ")
		c.bw.WriteString(name)
		c.bw.WriteString(" ")
		c.bw.WriteString(value)
		c.bw.WriteString("\r\n")
	}
	if len(tok) == 1 {
		if err := c.s.writeStats(c.ctx, add); err != nil {
			c.serverError(err)
			return
		}
		c.bw.WriteString("END\r\n")
		return
	}
	switch string(tok[1]) {
	case "reset":
		c.s.resetStats()
		c.bw.WriteString("RESET\r\n")
	case "settings":
		c.settingsStats(add)
		c.bw.WriteString("END\r\n")
	case "items", "slabs", "sizes", "conns", "extstore":
		c.bw.WriteString("END\r\n")
	case "detail":
		// As memcached: the word after "detail" decides, what follows it
		// is ignored, and anything else gets the usage.
		arg := ""
		if len(tok) >= 3 {
			arg = string(tok[2])
		}
		switch arg {
		case "on", "off":
			c.s.detail.on.Store(arg == "on")
			c.bw.WriteString("OK\r\n")
		case "dump":
			c.bw.Write(c.s.detail.dump(c.scr[:0]))
		default:
			c.bw.WriteString("CLIENT_ERROR usage: stats detail on|off|dump\r\n")
		}
	default:
		c.bw.WriteString("ERROR\r\n")
	}
}

// settingsStats gives "stats settings": the settings of memcached's that
// mean something here, in memcached's order.
func (c *conn) settingsStats(add func(name, value string)) {
	add("maxconns", itoa(int64(c.s.MaxConns)))
	add("evictions", "on")
	add("domain_socket", "NULL")
	add("cas_enabled", "yes")
	add("binding_protocol", "auto-negotiate")
	add("item_size_max", itoa(int64(c.s.maxItem())))
	add("flush_enabled", "yes")
}

// maxDataLen is the longest data block memcached takes on a command line
// (INT_MAX - 2); anything longer is a command-line error.
const maxDataLen = 1<<31 - 3

// tooManyTokens answers a line of more than maxTokens tokens as memcached
// 1.6.18 does: quit, version, mn and me ignore the extra tokens, the other
// meta commands refuse too many flags, everything else is an ERROR.
func (c *conn) tooManyTokens(cmd []byte) error {
	switch string(cmd) {
	case "quit":
		return errQuit
	case "version":
		c.bw.WriteString("VERSION ")
		c.bw.WriteString(c.s.version())
		c.bw.WriteString("\r\n")
	default:
		if !c.metaTooManyTokens(cmd, c.tok[:]) {
			c.bw.WriteString("ERROR\r\n")
		}
	}
	return nil
}

// cacheMemlimit answers cache_memlimit <megabytes>: memcached keeps the
// low 32 bits of the number and refuses less than 8 MB and more than
// 10^9 MB. kumo has no memory limit to set, so the answer is all it does.
func (c *conn) cacheMemlimit(arg []byte) {
	mb, ok := parseCUint(arg)
	switch {
	case !ok:
		c.writeString("ERROR\r\n")
	case uint32(mb) < 8:
		c.writeString("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n")
	case uint32(mb) > 1000000000:
		c.writeString("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n")
	default:
		c.writeString("OK\r\n")
	}
}

func itoa(v int64) string { return string(appendInt(nil, v)) }

// Numbers on command lines are read as memcached 1.6.18 reads them, with
// C's strtoull/strtol behind its safe_strto* helpers: optional leading
// white space, an optional sign, decimal digits, then white space or the
// end of the token ("+5", "\t5" and "-0" are numbers; "5x" and "" are
// not).

// isCSpace is C's isspace in the "C" locale.
func isCSpace(ch byte) bool { return ch == ' ' || (ch >= '\t' && ch <= '\r') }

// cNumber splits b into sign and magnitude as strtoull does. ok is false
// if there are no digits, something other than white space follows them,
// or the magnitude does not fit 64 bits (ERANGE).
func cNumber(b []byte) (neg bool, mag uint64, ok bool) {
	i := 0
	for i < len(b) && isCSpace(b[i]) {
		i++
	}
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	j := i
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		d := uint64(b[j] - '0')
		if mag > (1<<64-1-d)/10 {
			return false, 0, false
		}
		mag = mag*10 + d
	}
	if j == i || (j < len(b) && !isCSpace(b[j])) {
		return false, 0, false
	}
	return neg, mag, true
}

// parseCUint is memcached's safe_strtoull (and, on 64-bit systems,
// safe_strtoul): strtoull's value, refused only when a '-' made it
// negative as a signed number. So "-0" is 0, "-5" is refused, and the
// wrapped "-18446744073709551615" is 1, as in C.
func parseCUint(b []byte) (uint64, bool) {
	neg, mag, ok := cNumber(b)
	if !ok {
		return 0, false
	}
	if neg {
		mag = -mag
		if int64(mag) < 0 {
			return 0, false
		}
	}
	return mag, true
}

// parseCInt32 is memcached's safe_strtol: strtol's 64-bit value (outside
// it: refused), then stored into an int32, keeping the low 32 bits. So
// exptime -2147483649 is 2147483647 and 4294967396 is 100, as in
// memcached 1.6.18.
func parseCInt32(b []byte) (int64, bool) {
	neg, mag, ok := cNumber(b)
	if !ok || (!neg && mag > 1<<63-1) || (neg && mag > 1<<63) {
		return 0, false
	}
	v := int64(mag)
	if neg {
		v = -v
	}
	return int64(int32(v)), true
}
