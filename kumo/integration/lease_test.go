package integration

import (
	"regexp"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/proto/rpc"
)

// Ensure that the meta commands' leases work through a cluster, with a
// kumo-gateway and with an embedded gateway: the win token and the stale
// mark are decided on the coordinator and replicated to every copy, so
// one client wins, the others see Z, and a stale item is served with X
// until it is replaced. mg h and l report earlier reads.
func TestMetaLeases(t *testing.T) {
	t.Parallel()
	eachGateway(t, localcluster.Options{}, func(t *testing.T, c *localcluster.Cluster) {
		a, b := dial(t, c.Gateway()), dial(t, c.Gateway())
		cas := regexp.MustCompile(` c(\d+)`)
		steps := []struct {
			m        *mc
			send     string
			want     string // a regexp
			valueLen int    // a VA reply's data line follows
		}{
			// Autovivify: a wins, b waits (Z) on the empty item.
			{a, "mg v N30 s c t\r\n", `^HD s0 c\d+ t(29|30) W\r\n$`, 0},
			{b, "mg v N30 s c t\r\n", `^HD s0 c\d+ t(29|30) Z\r\n$`, 0},
			// Stale-while-revalidate: md I, one winner, X for all.
			{a, "set k 0 0 3\r\nold\r\n", `^STORED\r\n$`, 0},
			{a, "md k I T30\r\n", `^HD\r\n$`, 0},
			{b, "mg k v c t\r\n", `^VA 3 c\d+ t(29|30) X W\r\n$`, 3},
			{a, "mg k v c\r\n", `^VA 3 c\d+ Z X\r\n$`, 3},
			// A late writer holding an older CAS stores stale.
			{a, "ms k 3 I C1\r\nlat\r\n", `^HD\r\n$`, 0},
			{a, "mg k v\r\n", `^VA 3 Z X\r\n$`, 3},
			// Recache: the first to see the TTL under R wins.
			{a, "set r 0 100 1\r\nx\r\n", `^STORED\r\n$`, 0},
			{a, "mg r R200 t\r\n", `^HD t(99|100) W\r\n$`, 0},
			{b, "mg r R200 t\r\n", `^HD t(99|100) Z\r\n$`, 0},
			{a, "md nokey I\r\n", `^NF\r\n$`, 0},
			// h and l: the server that serves the key's reads knows.
			{a, "set hl 0 0 1\r\nx\r\n", `^STORED\r\n$`, 0},
			{a, "mg hl h l u\r\n", `^HD h0 l[01]\r\n$`, 0},
			{b, "mg hl h\r\n", `^HD h0\r\n$`, 0},
			{a, "mg hl h l\r\n", `^HD h1 l[01]\r\n$`, 0},
			{a, "set hl 0 0 1\r\ny\r\n", `^STORED\r\n$`, 0},
			{b, "gets hl\r\n", `^VALUE hl 0 1 \d+\r\n$`, 1},
			{b, "", `^END\r\n$`, 0},
			{a, "mg hl h\r\n", `^HD h1\r\n$`, 0},
		}
		for i, st := range steps {
			var got string
			if st.send == "" {
				got = st.m.line()
			} else {
				got = st.m.cmd(st.send)
			}
			if !regexp.MustCompile(st.want).MatchString(got) {
				t.Fatalf("step %d %q: got %q, want %s", i, st.send, got, st.want)
			}
			if st.valueLen > 0 {
				st.m.line()
			}
		}
		// The winner of k sets the fresh value with the CAS it got:
		// the item is no longer stale and has no token out.
		got := b.cmd("mg k c\r\n")
		m := cas.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("mg k c: %q", got)
		}
		if got := b.cmd("ms k 3 T0 C" + m[1] + "\r\nnew\r\n"); got != "HD\r\n" {
			t.Fatalf("ms with the current CAS: %q", got)
		}
		if got := a.cmd("mg k v\r\n"); got != "VA 3\r\n" {
			t.Fatalf("mg after the fresh set: %q", got)
		}
		if v := a.line(); v != "new\r\n" {
			t.Fatalf("value %q", v)
		}
		// Clients racing for one item's token: exactly one wins,
		// for a recache and again once the item is invalidated.
		if got := a.set("race", "x"); got != "STORED\r\n" {
			t.Fatalf("set race: %q", got)
		}
		if got := a.cmd("touch race 10\r\n"); got != "TOUCHED\r\n" {
			t.Fatalf("touch race: %q", got)
		}
		racers := make([]*mc, 8)
		for i := range racers {
			racers[i] = dial(t, c.Gateway())
		}
		for round, prep := range []string{"", "md race I\r\n"} {
			if prep != "" {
				if got := a.cmd(prep); got != "HD\r\n" {
					t.Fatalf("%q: %q", prep, got)
				}
			}
			for _, r := range racers {
				r.send("mg race R30 v\r\n")
			}
			wins := 0
			for _, r := range racers {
				l := r.line()
				r.line()
				switch {
				case regexp.MustCompile(` W\r\n$`).MatchString(l):
					wins++
				case !regexp.MustCompile(` Z( X)?\r\n$`).MatchString(l):
					t.Fatalf("round %d: %q, want W or Z", round, l)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d winners, want 1", round, wins)
			}
		}
		// Every copy holds the lease state: invalidate again and
		// read each server's record.
		if got := a.cmd("md k I\r\n"); got != "HD\r\n" {
			t.Fatalf("md k I: %q", got)
		}
		for i := 0; i < c.NumServers(); i++ {
			rc := rpc.Dial(c.Server(i).Addr, rpc.Options{CallTimeout: 5 * time.Second})
			eventually(t, 10*time.Second, "stale copy on "+c.Server(i).Name, func() bool {
				v, ok := getRaw(t, rc, "k")
				return ok && v.Stale && !v.TokenSent && string(v.Data) == "new"
			})
			rc.Close()
		}
	})
}
