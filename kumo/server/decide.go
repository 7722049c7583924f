package server

import (
	"bytes"
	"strconv"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// decide computes the record a write produces from the current one (old may
// be nil; exists says whether it is visible). A status other than StatusOK
// means nothing is stored.
func (s *Server) decide(op *writeOp, old *store.Record, exists bool) (rec store.Record, status int, num uint64, err error) {
	rec.Key = op.dbkey
	switch op.method {
	case wire.SrvStore, wire.SrvSet:
		rec.Value, rec.Flags, rec.Exptime = op.val.Data, op.val.Flags, op.val.Exptime
		switch op.mode {
		case wire.OpSet:
		case wire.OpAdd:
			if exists {
				return rec, wire.StatusNotStored, 0, nil
			}
			// mg N: the created item's win token goes to its creator.
			rec.TokenSent = op.val.TokenSent
		case wire.OpReplace:
			if !exists {
				return rec, wire.StatusNotStored, 0, nil
			}
		case wire.OpAppend, wire.OpPrepend:
			if !exists {
				return rec, wire.StatusNotStored, 0, nil
			}
			if len(old.Value)+len(op.val.Data) > maxValue {
				return rec, 0, 0, &rpc.Error{Msg: "out of memory storing object"}
			}
			v := make([]byte, 0, len(old.Value)+len(op.val.Data))
			if op.mode == wire.OpAppend {
				v = append(append(v, old.Value...), op.val.Data...)
			} else {
				v = append(append(v, op.val.Data...), old.Value...)
			}
			rec.Value, rec.Flags, rec.Exptime = v, old.Flags, old.Exptime
		case wire.OpCAS:
			if !exists {
				return rec, wire.StatusNotFound, 0, nil
			}
			if old.CAS() != op.cas {
				if !op.val.Stale || op.cas > old.CAS() {
					return rec, wire.StatusExists, 0, nil
				}
				// ms I: a value computed from an older version is still
				// stored, marked stale, keeping the exptime and token of
				// the item it replaces (memcached's set-to-invalid).
				rec.Exptime, rec.Stale, rec.TokenSent = old.Exptime, true, old.TokenSent
			}
		default:
			return rec, 0, 0, &rpc.Error{Code: rpc.CodeProtocol, Msg: "unknown store mode " + strconv.FormatUint(op.mode, 10)}
		}
		if op.cas != 0 && op.mode != wire.OpCAS {
			// A CAS compare on another mode (binary protocol, meta C flag).
			if !exists {
				return rec, wire.StatusNotFound, 0, nil
			}
			if old.CAS() != op.cas {
				return rec, wire.StatusExists, 0, nil
			}
		}
		if (op.mode == wire.OpAppend || op.mode == wire.OpPrepend) && op.limit > 0 &&
			itemSize(len(op.dbkey)-8, len(rec.Value), old.Flags) > op.limit {
			// memcached cannot allocate the longer item: not stored
			// (after the CAS compare, as in memcached).
			return rec, wire.StatusNotStored, 0, nil
		}
		return rec, wire.StatusOK, 0, nil
	case wire.SrvArith:
		if !exists {
			if !op.create {
				return rec, wire.StatusNotFound, 0, nil
			}
			rec.Value = strconv.AppendUint(nil, op.initial, 10)
			rec.Exptime = op.exptime
			return rec, wire.StatusOK, op.initial, nil
		}
		if len(old.Value) == 0 {
			// memcached refuses an empty value before comparing the CAS.
			return rec, wire.StatusNonNumeric, 0, nil
		}
		if op.cas != 0 && old.CAS() != op.cas {
			return rec, wire.StatusExists, 0, nil
		}
		cur, ok := parseCounter(old.Value)
		if !ok {
			return rec, wire.StatusNonNumeric, 0, nil
		}
		if op.decr {
			if op.delta > cur {
				cur = 0
			} else {
				cur -= op.delta
			}
		} else {
			cur += op.delta // wraps at 2^64 as memcached does
		}
		// Padded with spaces to the old length, as memcached rewrites a
		// counter in place ("10" decremented reads back as "9 ").
		v := appendCounter(make([]byte, 0, max(20, len(old.Value))), cur, len(old.Value))
		rec.Value, rec.Flags, rec.Exptime = v, old.Flags, old.Exptime
		// memcached rewrites a counter in place when the new number fits
		// in the old value's bytes, keeping the item's lease state; a
		// longer number makes a new item, without it.
		if len(v) <= len(old.Value) {
			rec.Stale, rec.TokenSent = old.Stale, old.TokenSent
		}
		if op.touch {
			rec.Exptime = op.newExp
		}
		return rec, wire.StatusOK, cur, nil
	case wire.SrvTouch:
		// A touch, gat or mg T keeps the item's CAS unique, as memcached
		// does. The touched record still needs a new clock, the version
		// that orders replicas (newer wins, strictly): one that kept its
		// clock with a new exptime would be refused by the replicas and
		// rebalance copies holding the old one. So it carries its CAS
		// unique of its own (wire.MetaCas, the store's CAS field).
		if !exists {
			return rec, wire.StatusNotFound, 0, nil
		}
		rec.Value = append([]byte(nil), old.Value...)
		rec.Flags, rec.Exptime = old.Flags, op.exptime
		rec.Stale, rec.TokenSent = old.Stale, old.TokenSent // a touch keeps the lease state
		rec.Cas = old.CAS()
		return rec, wire.StatusOK, 0, nil
	case wire.SrvLease:
		if !exists {
			return rec, wire.StatusNotFound, 0, nil
		}
		rec.Value = append([]byte(nil), old.Value...)
		rec.Flags, rec.Exptime = old.Flags, old.Exptime
		switch op.lease {
		case wire.LeaseWin:
			if old.CAS() != op.cas || old.TokenSent {
				return rec, wire.StatusExists, 0, nil
			}
			rec.Stale, rec.TokenSent = old.Stale, true
			rec.Cas = old.CAS() // handing out the token keeps the CAS unique, as in memcached
		default: // wire.LeaseInvalidate, as memcached's md I
			if op.cas != 0 && old.CAS() != op.cas {
				return rec, wire.StatusExists, 0, nil
			}
			rec.Stale = true
			if op.touch {
				rec.Exptime = op.newExp
			}
		}
		return rec, wire.StatusOK, 0, nil
	case wire.SrvRemove, wire.SrvDelete:
		if !exists {
			return rec, wire.StatusNotFound, 0, nil
		}
		if op.cas != 0 && old.CAS() != op.cas {
			return rec, wire.StatusExists, 0, nil
		}
		rec.Tombstone = true
		return rec, wire.StatusOK, 0, nil
	}
	return rec, 0, 0, errParams
}

func appendTrue(b []byte) []byte  { return msgpack.AppendBool(b, true) }
func appendFalse(b []byte) []byte { return msgpack.AppendBool(b, false) }

// appendCounter appends the value incr or decr stores for the number v in
// place of a value oldLen bytes long: the decimal number, padded with
// spaces to oldLen unless it is longer (memcache.AppendCounter).
func appendCounter(b []byte, v uint64, oldLen int) []byte {
	start := len(b)
	b = strconv.AppendUint(b, v, 10)
	for n := oldLen - (len(b) - start); n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// parseCounter reads a stored value as incr/decr do, like memcached's
// safe_strtoull on the item's data as a C string: the value ends at its
// first NUL; then leading white space, an optional sign, decimal digits
// that fit 64 bits, then white space or the end; whatever follows the
// first white space is ignored ("42 abc" counts as 42). A '-' negates
// the number as strtoull does, and is refused only where that makes it
// negative as a signed number: "-0" is 0, "-5" is not a number.
func parseCounter(b []byte) (uint64, bool) {
	if n := bytes.IndexByte(b, 0); n >= 0 {
		b = b[:n]
	}
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	j := i
	var v uint64
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		d := uint64(b[j] - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
		j++
	}
	if j == i || (j < len(b) && !isSpace(b[j])) {
		return 0, false
	}
	if neg {
		if v = -v; int64(v) < 0 {
			return 0, false
		}
	}
	return v, true
}

// isSpace is C's isspace in the "C" locale.
func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
