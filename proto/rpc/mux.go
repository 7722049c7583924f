package rpc

import "sync"

// Mux dispatches requests to handlers by method number. A request for a
// method with no handler gets a CodeProtocol error (the connection stays
// open), as kumofs answers an unknown method.
type Mux struct {
	mu sync.RWMutex // protects m
	m  map[uint32]Handler
}

// Handle registers h for method, replacing any earlier handler.
func (x *Mux) Handle(method uint32, h Handler) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = make(map[uint32]Handler)
	}
	x.m[method] = h
}

// HandleFunc registers f for method.
func (x *Mux) HandleFunc(method uint32, f func(req *Request)) { x.Handle(method, HandlerFunc(f)) }

// ServeRPC dispatches req to the handler of req.Method.
func (x *Mux) ServeRPC(req *Request) {
	x.mu.RLock()
	h := x.m[req.Method]
	x.mu.RUnlock()
	if h == nil {
		req.ReplyError(&Error{Code: CodeProtocol})
		return
	}
	h.ServeRPC(req)
}
