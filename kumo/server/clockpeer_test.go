package server

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Ensure that a keepalive or replication carrying a clock in the year 2101
// does not move the server's clock and is reported once, naming the peer by
// the address of its hello; and that the record such a replication carries
// is still ordered correctly: a later write over it is newer.
func TestFarFutureClockRefused(t *testing.T) {
	var mu sync.Mutex
	var peers []string
	clk := clock.New(clock.Options{MaxAhead: clock.DefaultMaxAhead,
		Refused: func(peer string, _ uint64, err error, _ uint64) {
			if !errors.Is(err, clock.ErrTooFarAhead) {
				t.Errorf("Refused with %v", err)
			}
			mu.Lock()
			peers = append(peers, peer)
			mu.Unlock()
		}})
	s, _ := startWithClock(t, filepath.Join(t.TempDir(), "db.kch"), clk)
	peer, _ := ring.ParseAddr("127.0.0.1:19812", 19800)
	cl := rpc.Dial(s.Addr().String(), rpc.Options{Hello: &rpc.Hello{Addr: peer.Dump(), Role: 1}})
	defer cl.Close()

	y2101 := clock.Make(4_133_980_800, 1)
	before := clk.Current()
	call(t, cl, wire.SrvKeepAlive, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendUint(b, y2101)
	})
	replicateSet(t, s, cl, "future", "v", y2101)
	if got := clk.Current(); clock.Seconds(got) > clock.Seconds(before)+1 {
		t.Fatalf("clock moved to %v", clock.Time(got))
	}
	mu.Lock()
	got := append([]string(nil), peers...)
	mu.Unlock()
	if len(got) != 1 || got[0] != peer.String() {
		t.Fatalf("reports %q, want one for %s", got, peer)
	}
	// The stored future version is data: a write over it must beat it.
	if st := storeKey(t, cl, wire.OpSet, "future", "later"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}
	if v, ok := getKey(t, cl, wire.SrvGet, "future"); !ok || string(v.Data) != "later" || v.Clock <= y2101 {
		t.Fatalf("get future = %q clock %#x, %v; want the later write above %#x", v.Data, v.Clock, ok, y2101)
	}
}
