package integration

import (
	"fmt"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/proto/rpc"
)

// Ensure that touch, gat and mg T keep an item's CAS unique through a
// cluster, as memcached does: every copy holds the kept CAS unique, a cas
// with the one read before the touches stores, and the stored value then
// has a new one. Through both gateway kinds (an embedded gateway may read
// a gets from another owner than the coordinator).
func TestTouchKeepsCAS(t *testing.T) {
	t.Parallel()
	eachGateway(t, localcluster.Options{}, func(t *testing.T, c *localcluster.Cluster) {
		m := dial(t, c.Gateway())
		for i := 0; i < 20; i++ { // keys with each server as coordinator
			key := fmt.Sprintf("touch%d", i)
			if got := m.set(key, "v"); got != "STORED\r\n" {
				t.Fatalf("set %s: %q", key, got)
			}
			_, cas0, ok := m.gets(key)
			if !ok {
				t.Fatalf("gets %s: miss", key)
			}
			if got := m.cmd("touch " + key + " 1000\r\n"); got != "TOUCHED\r\n" {
				t.Fatalf("touch %s: %q", key, got)
			}
			if _, cas, _ := m.gets(key); cas != cas0 {
				t.Fatalf("%s: gets after touch: CAS %d, want %d", key, cas, cas0)
			}
			want := fmt.Sprintf("VALUE %s 0 1 %d\r\n", key, cas0)
			if got := m.cmd("gats 2000 " + key + "\r\n"); got != want {
				t.Fatalf("%s: gats: %q, want %q", key, got, want)
			}
			if got := m.until("END\r\n"); got != "v\r\nEND\r\n" {
				t.Fatalf("%s: gats: value and end %q", key, got)
			}
			want = fmt.Sprintf("HD c%d\r\n", cas0)
			if got := m.cmd("mg " + key + " T3000 c\r\n"); got != want {
				t.Fatalf("%s: mg T c: %q, want %q", key, got, want)
			}
			for s := 0; s < c.NumServers(); s++ {
				cl := rpc.Dial(c.Server(s).Addr, rpc.Options{CallTimeout: 5 * time.Second})
				v, ok := getRaw(t, cl, key)
				cl.Close()
				if !ok || v.CAS() != cas0 || v.Exptime == 0 || string(v.Data) != "v" {
					t.Fatalf("%s on server %d: ok %v CAS %d exptime %d value %q; want CAS %d", key, s, ok, v.CAS(), v.Exptime, v.Data, cas0)
				}
			}
			if got := m.cmd(fmt.Sprintf("cas %s 0 0 1 %d\r\nw\r\n", key, cas0)); got != "STORED\r\n" {
				t.Fatalf("%s: cas with the CAS read before the touches: %q", key, got)
			}
			if v, cas, _ := m.gets(key); v != "w" || cas == cas0 {
				t.Fatalf("%s after cas: %q CAS %d; want w and a new CAS", key, v, cas)
			}
		}
	})
}
