package rpc

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/proto/msgpack"
)

// logBuf collects log lines for assertions.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logBuf) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Test methods.
const (
	mEcho    = 1 // result = params
	mAdd     = 2 // [a, b] -> a+b
	mSlow    = 3 // replies later from another goroutine, in reverse order of delay
	mNever   = 4 // never answered
	mFail    = 5 // error chosen by params[0]
	mTwice   = 6 // replies twice
	mPanic   = 7
	mPush    = 8  // calls the peer's mEcho on the same conn, returns its result
	mBadRes  = 9  // appends two values
	mPanicAp = 10 // panics inside the result append function
	mUnknown = 99
)

func testHandler(t testing.TB) Handler {
	return HandlerFunc(func(req *Request) {
		switch req.Method {
		case mEcho:
			req.Reply(func(b []byte) []byte { return append(b, req.Params...) })
		case mAdd:
			_, p, _ := msgpack.ReadArrayHeader(req.Params)
			a, p, _ := msgpack.ReadInt(p)
			x, _, _ := msgpack.ReadInt(p)
			req.Reply(func(b []byte) []byte { return msgpack.AppendInt(b, a+x) })
		case mSlow:
			_, p, _ := msgpack.ReadArrayHeader(req.Params)
			d, _, _ := msgpack.ReadInt(p)
			go func() {
				time.Sleep(time.Duration(d) * time.Millisecond)
				req.Reply(func(b []byte) []byte { return msgpack.AppendInt(b, d) })
			}()
		case mNever:
		case mFail:
			_, p, _ := msgpack.ReadArrayHeader(req.Params)
			k, _, _ := msgpack.ReadInt(p)
			switch k {
			case 0:
				req.ReplyError(&Error{Code: CodeServer})
			case 1:
				req.ReplyError(&Error{Msg: "empty suffix"})
			case 2:
				req.ReplyError(errors.New("disk on fire"))
			case 3:
				req.ReplyErrorRaw([]byte{0xc3})
			}
		case mTwice:
			req.Reply(func(b []byte) []byte { return msgpack.AppendInt(b, 1) })
			req.Reply(func(b []byte) []byte { return msgpack.AppendInt(b, 2) })
		case mPanic:
			panic("boom")
		case mPush:
			c := req.Conn
			c.Go(mEcho, func(b []byte) []byte { return append(b, req.Params...) }, 0, func(res []byte, err error) {
				if err != nil {
					req.ReplyError(err)
					return
				}
				req.ReplyRaw(res)
			})
		case mPanicAp:
			req.Reply(func(b []byte) []byte { panic("in append") })
		case mBadRes:
			req.Reply(func(b []byte) []byte { return append(b, 1, 2) })
		default:
			req.ReplyError(&Error{Code: CodeProtocol})
		}
	})
}

type testServer struct {
	srv  *Server
	addr string
	log  *logBuf
}

func startServer(t *testing.T, srv *Server) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	if srv.Logf == nil {
		srv.Logf = lb.logf
	}
	if srv.Handler == nil {
		srv.Handler = testHandler(t)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrClosed {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return &testServer{srv: srv, addr: l.Addr().String(), log: lb}
}

func dialTest(t *testing.T, addr string, opt Options) *Client {
	t.Helper()
	if opt.Logf == nil {
		opt.Logf = t.Logf
	}
	cl := Dial(addr, opt)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func ints(v ...int64) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, uint32(len(v)))
		for _, x := range v {
			b = msgpack.AppendInt(b, x)
		}
		return b
	}
}

func callInt(cl *Client, method uint32, args ...int64) (int64, error) {
	res, err := cl.Call(context.Background(), method, ints(args...))
	if err != nil {
		return 0, err
	}
	defer res.Release()
	v, rest, err := msgpack.ReadInt(res.Bytes())
	if err == nil && len(rest) != 0 {
		err = errors.New("trailing bytes in result")
	}
	return v, err
}

func TestCallBasic(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{})
	if v, err := callInt(cl, mAdd, 40, 2); v != 42 || err != nil {
		t.Fatalf("Add = %d, %v", v, err)
	}
	res, err := cl.Call(context.Background(), mEcho, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 2)
		b = msgpack.AppendRaw(b, []byte("key"))
		return msgpack.AppendNil(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(res.Bytes()); got != "92a36b6579c0" {
		t.Fatalf("echo = %s", got)
	}
	res.Release()
}

// TestConcurrentOutOfOrder runs many concurrent calls whose responses come
// back in a different order than the requests.
func TestConcurrentOutOfOrder(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				d := int64((g*7 + i*3) % 10)
				v, err := callInt(cl, mSlow, d)
				if err != nil || v != d {
					errs <- fmt.Errorf("slow(%d) = %d, %v", d, v, err)
					return
				}
				if v, err := callInt(cl, mAdd, int64(g), int64(i)); err != nil || v != int64(g+i) {
					errs <- fmt.Errorf("add = %d, %v", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGoAsync(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{})
	const n = 100
	var got atomic.Int64
	var wg sync.WaitGroup
	// Wait for the connection so Go takes the direct path.
	if _, err := callInt(cl, mAdd, 0, 0); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		wg.Add(1)
		cl.Go(mAdd, ints(int64(i), 1), time.Second, func(res []byte, err error) {
			defer wg.Done()
			v, _, rerr := msgpack.ReadInt(res)
			if err != nil || rerr != nil || v != int64(i+1) {
				t.Errorf("Go add %d = %d, %v, %v", i, v, err, rerr)
			}
			got.Add(1)
		})
	}
	wg.Wait()
	if got.Load() != n {
		t.Fatalf("%d callbacks", got.Load())
	}
}

func TestRemoteErrors(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{})
	tests := []struct {
		method uint32
		arg    int64
		want   Error
	}{
		{mFail, 0, Error{Code: CodeServer}},
		{mFail, 1, Error{Msg: "empty suffix"}},
		{mFail, 2, Error{Code: CodeServer}},
		{mFail, 3, Error{Code: CodeUnknown, Raw: []byte{0xc3}}},
		{mUnknown, 0, Error{Code: CodeProtocol}},
		{mPanic, 0, Error{Code: CodeServer}},
		{mBadRes, 0, Error{Code: CodeServer}},
		{mPanicAp, 0, Error{Code: CodeServer}},
	}
	for _, tt := range tests {
		_, err := callInt(cl, tt.method, tt.arg)
		var e *Error
		if !errors.As(err, &e) || e.Code != tt.want.Code || e.Msg != tt.want.Msg || !bytes.Equal(e.Raw, tt.want.Raw) {
			t.Errorf("method %d(%d): err %#v, want %#v", tt.method, tt.arg, err, tt.want)
		}
		// The connection stays open after every handler error.
		if v, err := callInt(cl, mAdd, 1, 2); v != 3 || err != nil {
			t.Fatalf("after method %d: add = %d, %v", tt.method, v, err)
		}
	}
	if !ts.log.contains("disk on fire") || !ts.log.contains("panicked: boom") {
		t.Errorf("missing log lines: %q", ts.log.lines)
	}
	if s := (&Error{Code: CodeProtocol}).Error(); s != "rpc: remote error 5 PROTOCOL_ERROR" {
		t.Errorf("Error() = %q", s)
	}
}

func TestNoHandler(t *testing.T) {
	srv := &Server{Logf: t.Logf}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	cl := dialTest(t, l.Addr().String(), Options{})
	_, err = callInt(cl, mAdd, 1, 2)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeProtocol {
		t.Fatalf("err = %v, want CodeProtocol", err)
	}
}

func TestDoubleReply(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{})
	if v, err := callInt(cl, mTwice); v != 1 || err != nil {
		t.Fatalf("twice = %d, %v", v, err)
	}
	if v, err := callInt(cl, mAdd, 2, 2); v != 4 || err != nil {
		t.Fatalf("after twice: %d, %v", v, err)
	}
	waitFor(t, "double-reply log", func() bool { return ts.log.contains("second reply to msgid 1") })
}

func TestTimeoutAndLateResponse(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{CallTimeout: 50 * time.Millisecond})
	if _, err := callInt(cl, mNever); err != ErrTimeout {
		t.Fatalf("never = %v, want ErrTimeout", err)
	}
	// The response to a timed-out call arrives later and is dropped.
	if _, err := callInt(cl, mSlow, 300); err != ErrTimeout {
		t.Fatalf("slow = %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := cl.Call(ctx, mSlow, ints(400)) // ctx deadline overrides CallTimeout; the late reply above arrives meanwhile
	if err != nil {
		t.Fatalf("slow with ctx deadline: %v", err)
	}
	res.Release()
	if v, err := callInt(cl, mAdd, 1, 1); v != 2 || err != nil {
		t.Fatalf("after timeouts: %d, %v", v, err)
	}
	// Cancelling the context abandons the call.
	ctx, cancel = context.WithCancel(context.Background())
	go cancel()
	if _, err := cl.Call(ctx, mNever, nil); err != context.Canceled {
		t.Fatalf("cancelled call = %v", err)
	}
	// Go with its own timeout.
	errc := make(chan error, 1)
	cl.Go(mNever, nil, 20*time.Millisecond, func(_ []byte, err error) { errc <- err })
	if err := <-errc; err != ErrTimeout {
		t.Fatalf("Go never = %v", err)
	}
}

// TestServerPush checks connections are symmetric: the server calls the
// client on the client's own connection.
func TestServerPush(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{Handler: testHandler(t)})
	res, err := cl.Call(context.Background(), mPush, ints(7, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	if got := hex.EncodeToString(res.Bytes()); got != "920708" {
		t.Fatalf("push result %s", got)
	}
}

func TestHello(t *testing.T) {
	var srvSaw atomic.Pointer[Hello]
	srvHello := &Hello{Addr: []byte{127, 0, 0, 1, 0x4e, 0x21}, Role: 0}
	ts := startServer(t, &Server{OnHello: func(c *Conn, h Hello) *Hello {
		srvSaw.Store(&h)
		c.SetValue("node:" + hex.EncodeToString(h.Addr))
		return srvHello
	}})
	got := make(chan Hello, 1)
	cl := dialTest(t, ts.addr, Options{
		Hello:   &Hello{Addr: []byte{127, 0, 0, 1, 0x4e, 0x22}, Role: 1},
		OnHello: func(c *Conn, h Hello) { got <- h },
	})
	if v, err := callInt(cl, mAdd, 1, 1); v != 2 || err != nil {
		t.Fatal(v, err)
	}
	h := <-got
	if !bytes.Equal(h.Addr, srvHello.Addr) || h.Role != 0 {
		t.Fatalf("client got hello %+v", h)
	}
	if p := cl.Conn().Hello(); p == nil || p.Role != 0 {
		t.Fatalf("Conn.Hello() = %+v", p)
	}
	s := srvSaw.Load()
	if s == nil || !bytes.Equal(s.Addr, []byte{127, 0, 0, 1, 0x4e, 0x22}) || s.Role != 1 {
		t.Fatalf("server saw hello %+v", s)
	}
}

func TestBadArgs(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{})
	_, err := cl.Call(context.Background(), mEcho, func(b []byte) []byte { return append(b, 0x92, 1) })
	if err != ErrBadMessage {
		t.Fatalf("bad args = %v", err)
	}
	if v, err := callInt(cl, mAdd, 1, 1); v != 2 || err != nil {
		t.Fatalf("after bad args: %d, %v", v, err)
	}
}

// TestServerConnAPI covers the per-connection API roles use: user value,
// addresses, a synchronous push from the server and OnClose.
func TestServerConnAPI(t *testing.T) {
	conns := make(chan *Conn, 1)
	closed := make(chan *Conn, 1)
	ts := startServer(t, &Server{
		Handler: HandlerFunc(func(req *Request) {
			req.Conn.SetValue("node-7")
			select {
			case conns <- req.Conn:
			default:
			}
			req.Reply(nil)
		}),
		OnClose: func(c *Conn) { closed <- c },
	})
	cl := dialTest(t, ts.addr, Options{Handler: testHandler(t)})
	res, err := cl.Call(context.Background(), mAdd, ints(1, 2))
	if err != nil || string(res.Bytes()) != "\xc0" {
		t.Fatalf("call: %x, %v", res.Bytes(), err)
	}
	res.Release()
	sc := <-conns
	if sc.Value() != "node-7" || sc.RemoteAddr().String() != cl.Conn().LocalAddr().String() {
		t.Fatalf("value %v, remote %v", sc.Value(), sc.RemoteAddr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err = sc.Call(ctx, mAdd, ints(20, 22))
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if v, _, _ := msgpack.ReadInt(res.Bytes()); v != 42 {
		t.Fatalf("push result %x", res.Bytes())
	}
	res.Release()
	cl.Close()
	if c := <-closed; c != sc {
		t.Fatal("OnClose got another conn")
	}
	if err := sc.Err(); err != ErrConnLost {
		t.Fatalf("server conn Err = %v", err)
	}
	if _, err := sc.Call(ctx, mAdd, nil); err != ErrPeerDown {
		t.Fatalf("call on closed conn = %v", err)
	}
}

func TestMux(t *testing.T) {
	var mux Mux
	mux.HandleFunc(mAdd, testHandler(t).ServeRPC)
	ts := startServer(t, &Server{Handler: &mux})
	cl := dialTest(t, ts.addr, Options{})
	if v, err := callInt(cl, mAdd, 3, 4); v != 7 || err != nil {
		t.Fatalf("add = %d, %v", v, err)
	}
	_, err := callInt(cl, mEcho)
	if e, ok := err.(*Error); !ok || e.Code != CodeProtocol {
		t.Fatalf("unregistered method: %v", err)
	}
	if v, err := callInt(cl, mAdd, 1, 1); v != 2 || err != nil {
		t.Fatalf("after unknown method: %d, %v", v, err)
	}
}

// TestWriteBacklog: a peer that never reads makes our unwritten backlog
// grow; past the limit the connection closes instead of buffering forever.
func TestWriteBacklog(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lb := &logBuf{}
	cl := dialTest(t, l.Addr().String(), Options{MaxFrame: 1024, Logf: lb.logf, CallTimeout: time.Minute})
	peer, err := l.Accept() // never reads
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	waitFor(t, "client up", func() bool { return cl.Conn() != nil })
	c := cl.Conn()
	payload := make([]byte, 64<<10)
	args := func(b []byte) []byte { return msgpack.AppendRaw(msgpack.AppendArrayHeader(b, 1), payload) }
	var failed atomic.Int32
	for i := 0; i < 2000 && c.Err() == nil; i++ { // at most 128 MiB
		c.Go(mEcho, args, 0, func(_ []byte, err error) {
			if err == ErrConnLost {
				failed.Add(1)
			}
		})
	}
	if c.Err() != errBacklog {
		t.Fatalf("conn err = %v, want errBacklog", c.Err())
	}
	if failed.Load() == 0 || !lb.contains("wait to be written") {
		t.Fatalf("%d calls failed; log %q", failed.Load(), lb.lines)
	}
}

// TestCallsWaitForConnectAttempt: calls made while the first connection
// attempt is in progress wait for it instead of failing.
func TestCallsWaitForConnectAttempt(t *testing.T) {
	ts := startServer(t, &Server{})
	release := make(chan struct{})
	var d net.Dialer
	cl := dialTest(t, ts.addr, Options{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		<-release
		return d.DialContext(ctx, "tcp", addr)
	}})
	goDone := make(chan error, 1)
	cl.Go(mAdd, ints(1, 2), time.Minute, func(res []byte, err error) {
		if v, _, _ := msgpack.ReadInt(res); err == nil && v != 3 {
			err = fmt.Errorf("result %x", res)
		}
		goDone <- err
	})
	callDone := make(chan error, 1)
	go func() { _, err := callInt(cl, mAdd, 2, 2); callDone <- err }()
	select {
	case err := <-goDone:
		t.Fatalf("Go finished before the connection: %v", err)
	case err := <-callDone:
		t.Fatalf("Call finished before the connection: %v", err)
	default:
	}
	close(release)
	if err := <-goDone; err != nil {
		t.Fatalf("Go: %v", err)
	}
	if err := <-callDone; err != nil {
		t.Fatalf("Call: %v", err)
	}
}

func TestWrongRole(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&Error{Code: CodeProtocol}, "rpc: remote error 5 PROTOCOL_ERROR (not a manager's address? the daemon there does not know the request)"},
		{fmt.Errorf("x: %w", &Error{Code: CodeProtocol}), "x: rpc: remote error 5 PROTOCOL_ERROR (not a manager's address? the daemon there does not know the request)"},
		{&Error{Code: CodeProtocol, Msg: "bad args"}, "rpc: remote error 5 PROTOCOL_ERROR: bad args"},
		{&Error{Code: CodeServer}, "rpc: remote error 6 SERVER_ERROR"},
		{ErrTimeout, ErrTimeout.Error()},
	} {
		got := WrongRole(c.err, "manager")
		if got.Error() != c.want || !errors.Is(got, c.err) {
			t.Errorf("WrongRole(%v) = %q, want %q wrapping it", c.err, got, c.want)
		}
	}
}

// Ensure that a batch of requests read together whose handlers run long
// (large values into a slow store) sends the replies it has before the
// batch ends: a gateway heard nothing from a server working through 1 MB
// writes for over two seconds, took it for a silent peer and reset it.
func TestLongBatchSendsRepliesEarly(t *testing.T) {
	const mFast, mWork, mLast = 1, 2, 3
	release := make(chan struct{})
	ts := startServer(t, &Server{Handler: HandlerFunc(func(req *Request) {
		switch req.Method {
		case mWork:
			time.Sleep(batchFlushEvery + 50*time.Millisecond) // the work, not a synchronisation
		case mLast:
			select { // held until the test has the first two replies
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		req.Reply(func(b []byte) []byte { return msgpack.AppendUint(b, uint64(req.Method)) })
	})})
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var frames []byte
	for _, m := range []uint64{mFast, mWork, mLast} {
		frames = msgpack.AppendArrayHeader(frames, 4)
		frames = msgpack.AppendUint(frames, 0)
		frames = msgpack.AppendUint(frames, m) // msgid = method
		frames = msgpack.AppendUint(frames, m)
		frames = msgpack.AppendArrayHeader(frames, 0)
	}
	if _, err := nc.Write(frames); err != nil { // one write: one batch
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []uint64
	var buf []byte
	tmp := make([]byte, 4096)
	for len(got) < 2 {
		n, err := nc.Read(tmp)
		if err != nil {
			close(release)
			t.Fatalf("replies before the batch ended: %v (got msgids %v)", err, got)
		}
		buf = append(buf, tmp[:n]...)
		for {
			rest, err := msgpack.Skip(buf)
			if err != nil {
				break
			}
			_, p, _ := msgpack.ReadArrayHeader(buf)
			_, p, _ = msgpack.ReadUint(p)
			id, _, _ := msgpack.ReadUint(p)
			got = append(got, id)
			buf = rest
		}
	}
	close(release)
	if got[0] != mFast || got[1] != mWork {
		t.Fatalf("first replies: msgids %v, want [1 2]", got)
	}
}
