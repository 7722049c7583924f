package rpc

import (
	"sync/atomic"

	"kumofs/proto/msgpack"
)

// Request is an incoming call, handed to Handler.ServeRPC.
//
// Exactly one of Reply, ReplyRaw, ReplyError and ReplyErrorRaw answers it,
// from any goroutine. A second reply is a programmer error: it is logged and
// ignored. A request may also be left unanswered (kumofs ReplaceOffer); the
// peer's call then times out.
type Request struct {
	Method uint32
	// Params is the raw msgpack params array. It lives in a pooled copy of
	// the frame owned by the request and is valid until the reply is sent;
	// copy anything needed afterwards.
	Params []byte
	Conn   *Conn // the connection the request arrived on

	msgid uint32
	buf   *[]byte
	batch *Batch       // the read goroutine's (see Batch)
	state atomic.Int32 // 0 pending, 1 replied
}

// MsgID returns the request's message id.
func (r *Request) MsgID() uint32 { return r.msgid }

// claim marks r replied; false means it already was (logged).
func (r *Request) claim() bool {
	if r.state.CompareAndSwap(0, 1) {
		return true
	}
	r.Conn.logf("second reply to msgid %d (method %d) ignored", r.msgid, r.Method)
	return false
}

// release returns the params buffer to the pool.
func (r *Request) release() {
	if r.buf != nil {
		putBuf(r.buf)
		r.buf, r.Params = nil, nil
	}
}

// Reply sends a successful response whose result appendResult appends
// (exactly one msgpack value; nil sends a nil result). appendResult runs
// under the connection's write lock, directly on its write buffer: it must
// only append and must not call into the Conn. If it does not append
// exactly one value, the peer gets CodeServer instead (and it is logged).
func (r *Request) Reply(appendResult func([]byte) []byte) {
	r.ReplyIn(nil, appendResult)
}

// Batch returns the batch of the read goroutine that received r. Use it
// only during the ServeRPC call that received r, on its goroutine: a
// handler that goes on elsewhere must not. Requests a handler starts
// through it (Conn.GoIn to other peers) leave at the end of the read, with
// the replies to its other requests.
func (r *Request) Batch() *Batch { return r.batch }

// ReplyIn is Reply with the response held in b, if not nil, until b.Flush.
// b must belong to the calling goroutine (Request.Batch during ServeRPC,
// or the rb of a GoBatched completion).
func (r *Request) ReplyIn(b *Batch, appendResult func([]byte) []byte) {
	if !r.claim() {
		return
	}
	if appendResult == nil {
		appendResult = msgpack.AppendNil
	}
	sent := false
	defer func() {
		if !sent {
			r.state.Store(0) // appendResult panicked: let the handler's recovery answer
		}
	}()
	r.Conn.writeResponseIn(b, r.msgid, nil, appendResult)
	sent = true
	r.release()
}

// ReplyRaw sends a successful response whose result is the msgpack value
// result (copied before ReplyRaw returns).
func (r *Request) ReplyRaw(result []byte) {
	if !r.claim() {
		return
	}
	r.Conn.writeResponse(r.msgid, nil, func(b []byte) []byte { return append(b, result...) })
	r.release()
}

// ReplyError sends an error response with a nil result. An *Error with a
// non-zero Code is sent as that integer code; an *Error with Code 0 as its
// Msg (a raw string, as kumofs's "empty suffix"); any other error as
// CodeServer, with its text logged locally.
func (r *Request) ReplyError(err error) {
	if !r.claim() {
		return
	}
	var appendErr func([]byte) []byte
	switch e, _ := err.(*Error); {
	case e != nil && e.Code == 0:
		appendErr = func(b []byte) []byte { return msgpack.AppendString(b, e.Msg) }
	case e != nil && e.Code > 0 && e.Code <= CodeServer:
		appendErr = appendCode(e.Code)
	case e != nil:
		appendErr = func(b []byte) []byte { return msgpack.AppendInt(b, int64(e.Code)) }
	default:
		r.Conn.logf("method %d: %v", r.Method, err)
		appendErr = appendCode(CodeServer)
	}
	r.Conn.writeResponse(r.msgid, appendErr, nil)
	r.release()
}

// ReplyErrorRaw sends an error response whose error slot is the msgpack
// value errValue (kumofs sometimes sends true) and whose result is nil.
func (r *Request) ReplyErrorRaw(errValue []byte) {
	if !r.claim() {
		return
	}
	r.Conn.writeResponse(r.msgid, func(b []byte) []byte { return append(b, errValue...) }, nil)
	r.release()
}
