package benchload

import (
	"bytes"
	"encoding/binary"
	"io"
)

// Binary protocol constants (memcached's protocol_binary.h).
const (
	binHeaderLen = 24
	binReqMagic  = 0x80
	binResMagic  = 0x81
	opGet        = 0x00
	opSet        = 0x01
	opNoop       = 0x0a
	opGetKQ      = 0x0d

	statusOK       = 0x0000
	statusNotFound = 0x0001

	// maxBody bounds a binary reply body and a text value we accept.
	maxBody = 2 << 20
)

// zeroExtras are the flags and exptime of a binary set.
var zeroExtras [8]byte

var (
	crlf        = []byte("\r\n")
	textEnd     = []byte("END\r\n")
	textStored  = []byte("STORED\r\n")
	textValue   = []byte("VALUE ")
	textSrvErr  = []byte("SERVER_ERROR")
	textNotStor = []byte("NOT_STORED\r\n")
)

// writeTextGet writes "get k1 k2 ...\r\n".
func (w *worker) writeTextGet(rq *request) {
	w.w.WriteString("get")
	for j := 0; j < rq.n; j++ {
		w.w.WriteByte(' ')
		w.w.Write(w.key(int(w.rkeys[rq.off+j])))
	}
	w.w.Write(crlf)
}

// writeTextSet writes "set KEY 0 0 SIZE\r\nVALUE\r\n".
func (w *worker) writeTextSet(key []byte) {
	w.w.WriteString("set ")
	w.w.Write(key)
	w.w.Write(w.setTail)
	w.w.Write(w.val)
	w.w.Write(crlf)
}

// readLine returns the next reply line including its "\r\n"; it is valid
// until the next read from w.r.
func (w *worker) readLine() ([]byte, error) {
	line, err := w.r.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errProto
	}
	return line, nil
}

// readTextSet reads the reply of a text set.
func (w *worker) readTextSet(rq *request) error {
	line, err := w.readLine()
	if err != nil {
		return err
	}
	switch {
	case bytes.Equal(line, textStored):
		w.acked(rq)
	case bytes.HasPrefix(line, textSrvErr), bytes.Equal(line, textNotStor):
		w.failed(rq)
	default:
		return errProto
	}
	return nil
}

// readTextGet reads the VALUE lines and END of a text get. Values must come
// in the order of the request's keys (a skipped key is a miss).
func (w *worker) readTextGet(rq *request) error {
	j := 0
	for {
		line, err := w.readLine()
		if err != nil {
			return err
		}
		if bytes.Equal(line, textEnd) {
			for ; j < rq.n; j++ {
				w.got(rq, j, false, nil)
			}
			return nil
		}
		if bytes.HasPrefix(line, textSrvErr) {
			w.errs.Add(1)
			return nil
		}
		if !bytes.HasPrefix(line, textValue) {
			return errProto
		}
		key, size, ok := parseValueLine(line[len(textValue) : len(line)-2])
		if !ok {
			return errProto
		}
		// Find the key among those not answered yet.
		at := -1
		for i := j; i < rq.n; i++ {
			if bytes.Equal(w.key(int(w.rkeys[rq.off+i])), key) {
				at = i
				break
			}
		}
		if at < 0 {
			return errProto
		}
		buf := w.grow(size + 2)
		if _, err := io.ReadFull(w.r, buf); err != nil {
			return err
		}
		if buf[size] != '\r' || buf[size+1] != '\n' {
			return errProto
		}
		for ; j < at; j++ {
			w.got(rq, j, false, nil)
		}
		w.got(rq, at, true, buf[:size])
		j = at + 1
	}
}

// parseValueLine parses "KEY FLAGS BYTES[ CAS]" (without "VALUE " and
// "\r\n"). key aliases b.
func parseValueLine(b []byte) (key []byte, size int, ok bool) {
	if len(b) == 0 || b[len(b)-1] == ' ' {
		return nil, 0, false
	}
	f := 0
	var fields [4][]byte
	for len(b) > 0 && f < 4 {
		i := bytes.IndexByte(b, ' ')
		if i == 0 {
			return nil, 0, false
		}
		if i < 0 {
			i = len(b)
		}
		fields[f] = b[:i]
		f++
		b = b[min(i+1, len(b)):]
	}
	if len(b) > 0 || f < 3 {
		return nil, 0, false
	}
	if _, ok := parseDigits(fields[1]); !ok {
		return nil, 0, false
	}
	n, ok := parseDigits(fields[2])
	if !ok || n > maxBody {
		return nil, 0, false
	}
	return fields[0], int(n), true
}

// writeBinHeader writes a request header.
func (w *worker) writeBinHeader(op byte, keyLen, extLen, bodyLen int, opaque uint32) {
	h := &w.hdr
	*h = [binHeaderLen]byte{}
	h[0] = binReqMagic
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(keyLen))
	h[4] = byte(extLen)
	binary.BigEndian.PutUint32(h[8:], uint32(bodyLen))
	binary.BigEndian.PutUint32(h[12:], opaque)
	w.w.Write(h[:])
}

// writeBinGet writes a GET, or for a multi-get GETKQ per key and a NOOP
// (opaque = position of the key; the NOOP's is n).
func (w *worker) writeBinGet(rq *request) {
	if rq.n == 1 {
		key := w.key(int(w.rkeys[rq.off]))
		w.writeBinHeader(opGet, len(key), 0, len(key), 0)
		w.w.Write(key)
		return
	}
	for j := 0; j < rq.n; j++ {
		key := w.key(int(w.rkeys[rq.off+j]))
		w.writeBinHeader(opGetKQ, len(key), 0, len(key), uint32(j))
		w.w.Write(key)
	}
	w.writeBinHeader(opNoop, 0, 0, 0, uint32(rq.n))
}

// writeBinSet writes a SET with flags 0 and exptime 0.
func (w *worker) writeBinSet(key []byte) {
	w.writeBinHeader(opSet, len(key), 8, 8+len(key)+len(w.val), 0)
	w.w.Write(zeroExtras[:])
	w.w.Write(key)
	w.w.Write(w.val)
}

// binReply is a parsed binary response; body aliases w.rbuf until the next
// read.
type binReply struct {
	op     byte
	status uint16
	opaque uint32
	extLen int
	keyLen int
	body   []byte
}

// value returns the value part of the body.
func (r *binReply) value() []byte { return r.body[r.extLen+r.keyLen:] }

// readBin reads one binary response.
func (w *worker) readBin() (binReply, error) {
	h := w.hdr[:]
	if _, err := io.ReadFull(w.r, h); err != nil {
		return binReply{}, err
	}
	if h[0] != binResMagic {
		return binReply{}, errProto
	}
	r := binReply{
		op:     h[1],
		keyLen: int(binary.BigEndian.Uint16(h[2:])),
		extLen: int(h[4]),
		status: binary.BigEndian.Uint16(h[6:]),
		opaque: binary.BigEndian.Uint32(h[12:]),
	}
	n := binary.BigEndian.Uint32(h[8:])
	if n > maxBody || int(n) < r.keyLen+r.extLen {
		return binReply{}, errProto
	}
	r.body = w.grow(int(n))
	if _, err := io.ReadFull(w.r, r.body); err != nil {
		return binReply{}, err
	}
	return r, nil
}

// readBinSet reads the reply of a SET.
func (w *worker) readBinSet(rq *request) error {
	r, err := w.readBin()
	if err != nil {
		return err
	}
	if r.op != opSet {
		return errProto
	}
	if r.status == statusOK {
		w.acked(rq)
	} else {
		w.failed(rq)
	}
	return nil
}

// readBinGet reads the reply of a GET, or the GETKQ hits and the NOOP of a
// multi-get.
func (w *worker) readBinGet(rq *request) error {
	if rq.n == 1 {
		r, err := w.readBin()
		if err != nil {
			return err
		}
		switch {
		case r.op != opGet:
			return errProto
		case r.status == statusOK:
			w.got(rq, 0, true, r.value())
		case r.status == statusNotFound:
			w.got(rq, 0, false, nil)
		default:
			w.errs.Add(1)
		}
		return nil
	}
	j := 0
	for {
		r, err := w.readBin()
		if err != nil {
			return err
		}
		switch {
		case r.op == opNoop:
			if r.opaque != uint32(rq.n) {
				return errProto
			}
			for ; j < rq.n; j++ {
				w.got(rq, j, false, nil)
			}
			return nil
		case r.op != opGetKQ || r.opaque >= uint32(rq.n) || int(r.opaque) < j:
			return errProto
		}
		at := int(r.opaque)
		for ; j < at; j++ {
			w.got(rq, j, false, nil)
		}
		j = at + 1
		if r.status != statusOK {
			w.errs.Add(1)
			continue
		}
		w.got(rq, at, true, r.value())
	}
}
