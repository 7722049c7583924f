// Package rpc is kumofs's msgpack-RPC: back-to-back msgpack objects on TCP,
// with no length prefix.
//
//	request   [0, msgid, method, params]
//	response  [1, msgid, error, result]   (error before result; either may be nil)
//	hello     [2, addr, role]             (cluster peers, first message)
//
// A connection (*Conn) is symmetric: either side may send requests and
// responses, so the manager can push HashSpacePush down a gateway's
// connection. Dial returns a *Client that owns one reconnecting connection;
// a Server accepts connections and serves them with a Handler
// (often a Mux, which dispatches by method number).
//
// # Writes
//
// Every frame (request, reply, hello) is appended to the connection's write
// buffer under a mutex, and one writer goroutine per connection flushes
// everything pending with a single Write (it yields once to the scheduler
// before taking the buffer, so callers about to append join the batch).
// Many concurrent calls therefore share write syscalls.
//
// # Reads
//
// One read goroutine per connection reads into a growable buffer and finds
// frame ends with msgpack.Skip, decoding in place. A frame larger than
// MaxFrame, a msgpack error or a frame that is not one of the three shapes
// above closes that connection (with a log line); other connections are not
// affected and nothing panics on input.
//
// # Limits
//
// A frame larger than MaxFrame closes the connection. So does an unwritten
// backlog of more than max(2*MaxFrame, 1 MiB) bytes (a peer that stopped
// reading), or a Write blocked for WriteTimeout.
//
// # Errors on the wire
//
// ReplyError sends an *Error with a non-zero Code as that integer code (the
// kumofs form) and an *Error with Code 0 as its Msg as a raw string (the
// kumofs application form, e.g. "empty suffix"). Any other error goes out as
// CodeServer, and its text is only logged locally. On the calling side an
// integer error becomes *Error{Code: n}, a raw string becomes *Error{Msg: s}
// and any other value (kumofs sends true) becomes *Error{Code: CodeUnknown}
// with the value's msgpack bytes in Raw.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Error codes carried in the response's error slot, as in kumofs
// src/rpc/protocol.h.
const (
	CodeTransportLost = 1
	CodeNodeLost      = 2
	CodeTimeout       = 3
	CodeUnknown       = 4
	CodeProtocol      = 5 // unknown method or wrong argument types
	CodeServer        = 6 // any handler failure
)

// Errors returned by calls. Remote errors are *Error.
var (
	// ErrTimeout means no response arrived before the call's deadline.
	ErrTimeout = errors.New("rpc: call timed out")

	// ErrPeerDown means there is no live connection (the client is waiting
	// to reconnect, the last dial failed, or the Conn has failed); the call
	// was not sent, so retrying it elsewhere is safe.
	ErrPeerDown = errors.New("rpc: peer down")

	// ErrConnLost means the connection closed while the call was pending;
	// the request may or may not have been processed by the peer.
	ErrConnLost = errors.New("rpc: connection lost")

	// ErrClosed means the Client, Conn or Server was closed by its owner.
	ErrClosed = errors.New("rpc: closed")

	// ErrBadMessage means an args or result function did not append exactly
	// one msgpack value. It is a programmer error; nothing is sent.
	ErrBadMessage = errors.New("rpc: args or result is not exactly one msgpack value")
)

// Message types, the first element of every frame.
const (
	typeRequest  = 0
	typeResponse = 1
	typeHello    = 2
)

// Defaults for zero Options and Server fields.
const (
	DefaultCallTimeout  = 5 * time.Second
	DefaultDialTimeout  = 2 * time.Second
	DefaultMaxFrame     = 64 << 20
	DefaultWriteTimeout = 10 * time.Second
	minBackoff          = 50 * time.Millisecond
	maxBackoff          = 2 * time.Second
)

// Error is an error carried in a response's error slot.
type Error struct {
	Code int    // kumofs error code, or 0 when the peer sent a string
	Msg  string // the string the peer sent, if any
	Raw  []byte // the error slot's msgpack bytes when it was neither int nor raw
}

var codeNames = [...]string{
	CodeTransportLost: "TRANSPORT_LOST",
	CodeNodeLost:      "NODE_LOST",
	CodeTimeout:       "TIMEOUT",
	CodeUnknown:       "UNKNOWN_ERROR",
	CodeProtocol:      "PROTOCOL_ERROR",
	CodeServer:        "SERVER_ERROR",
}

func (e *Error) Error() string {
	if e.Code == 0 {
		return "rpc: remote error: " + e.Msg
	}
	s := "rpc: remote error " + strconv.Itoa(e.Code)
	if e.Code > 0 && e.Code < len(codeNames) {
		s += " " + codeNames[e.Code]
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// WrongRole adds to a CodeProtocol error what it most likely means to a
// tool that sent a request every daemon of role want knows: the address
// is another kind of daemon (a manager's request sent to a server's port,
// or the other way round). Other errors are returned as they are.
func WrongRole(err error, want string) error {
	var re *Error
	if errors.As(err, &re) && re.Code == CodeProtocol && re.Msg == "" {
		return fmt.Errorf("%w (not a %s's address? the daemon there does not know the request)", err, want)
	}
	return err
}

// Hello is the cluster-init message [2, addr, role]. kumofs sends addr as a
// 6-byte raw (IPv4 + port) and role 0 for a manager, 1 for a server.
type Hello struct {
	Addr []byte
	Role uint8
}

// Handler serves requests arriving on a connection.
//
// ServeRPC is called on the connection's read goroutine, in arrival order,
// so it must not block: a fast handler replies inline; a slow one keeps req
// and replies later from any goroutine. A handler may also never reply
// (kumofs ReplaceOffer); the caller then times out.
type Handler interface {
	ServeRPC(req *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(req *Request)

// ServeRPC calls f(req).
func (f HandlerFunc) ServeRPC(req *Request) { f(req) }

// Options configure a Client. The zero value is usable.
type Options struct {
	CallTimeout  time.Duration // default deadline of Call/Go; default 5 s
	DialTimeout  time.Duration // per connection attempt; default 2 s
	WriteTimeout time.Duration // a Write blocked this long closes the conn; default 10 s
	MaxFrame     int           // largest accepted incoming frame; default 64 MiB

	// CloseSilent closes the connection when a call times out and nothing
	// at all arrived from the peer while it waited: the peer is cut off or
	// its host is dead, not slow. Other pending calls then fail at once
	// with ErrConnLost instead of each waiting out its timeout, and the
	// client reconnects (or learns it cannot). Leave it off for peers that
	// may legitimately hold a call without replying for longer than the
	// call timeout.
	CloseSilent bool

	// Probe, with CloseSilent, finds a silent peer before a long call's
	// own timeout; see Probe.
	Probe *Probe

	// Hello, if set, is sent as [2, addr, role] before anything else on
	// every (re)connection, making this a cluster peer connection.
	Hello *Hello

	// OnHello is called with the hello the peer sends back (on the read
	// goroutine; it must not block).
	OnHello func(c *Conn, h Hello)

	// Handler serves requests the peer sends us; nil answers every request
	// with CodeProtocol.
	Handler Handler

	// OnUp is called on the client's goroutine after each successful
	// (re)connection; the hello (if any) is already queued ahead of every
	// call, and calls may already be using the connection. It must not block.
	OnUp func(c *Conn)

	// OnDown is the failure-detection hook. It is called with failures == 0
	// and the cause when an established connection is lost, and after every
	// failed connection attempt with failures = the number of consecutive
	// failed attempts since the last successful connection (1, 2, 3, ...).
	// kumofs declares a node lost after its retry limit (-Yn 4): do that
	// with failures > 4. After a failed attempt it runs before the calls
	// that waited for that attempt fail. It runs on the client's goroutine,
	// must not block, and is not called after Close has returned.
	OnDown func(failures int, err error)

	// Logf logs connection problems; default log.Printf.
	Logf func(format string, args ...any)

	// Dial opens the connection; default a net.Dialer with DialTimeout.
	// Tests and benchmarks use it to wrap the net.Conn.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Probe describes a liveness probe. When a call has waited After with
// nothing at all arriving from the peer, the connection sends the probe
// request (Method with Args, which the peer must answer at once, like a
// keepalive) with timeout After; if that meets silence too, the connection
// closes as CloseSilent describes. A slow handler on a live peer is not
// mistaken for a dead peer: the peer answers the probe.
type Probe struct {
	Method uint32
	Args   func([]byte) []byte
	After  time.Duration
}

func (o *Options) setDefaults() {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.Logf == nil {
		o.Logf = defaultLogf
	}
}

// ErrorKind names the kind of a call error, for metrics and logs:
// "timeout", "conn_lost", "peer_down", "closed", "remote" (an *Error from
// the peer) or "other".
func ErrorKind(err error) string {
	var re *Error
	switch {
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrConnLost):
		return "conn_lost"
	case errors.Is(err, ErrPeerDown):
		return "peer_down"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.As(err, &re):
		return "remote"
	}
	return "other"
}
