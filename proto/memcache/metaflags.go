package memcache

import "encoding/base64"

// Parsing of meta command flags, as memcached 1.6.18's _meta_flag_preparse
// and the command functions around it do it (see meta.go).

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

// The flags each command takes. mg R and md I need a LeaseBackend (see
// leaseFlags), E of mg and ms a CASSetter (casFlags).
var (
	mgFlags = flagMask(metaCommon) &^ flagBit('R')
	msFlags = flagMask(metaCommon)
	mdFlags = flagMask(metaCommon) &^ flagBit('I')
	maFlags = flagMask(metaCommon)
)

// leaseFlags returns allowed plus the lease flag extra when the backend
// has leases (lb != nil).
func leaseFlags(allowed uint64, lb LeaseBackend, extra byte) uint64 {
	if lb != nil {
		return allowed | flagBit(extra)
	}
	return allowed
}

// casFlags returns allowed plus E when the backend sets the CAS unique a
// client chooses (CASSetter).
func (s *Server) casFlags(allowed uint64) uint64 {
	if _, ok := s.Backend.(CASSetter); ok {
		return allowed | flagBit('E')
	}
	return allowed
}

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
	recache int64  // R
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
			a.recache, ok = parseCInt32(arg)
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
// over 250 bytes, also a base64 one (b), as memcached 1.6.18 refuses it and
// as mg, md and ma refuse it (metaPrecheck): an item ms could store under
// a longer base64 token could not be read or deleted by key.
func msKeyTooLong(tok [][]byte) bool {
	return len(tok[1]) > maxKeyLen
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
