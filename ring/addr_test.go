package ring

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		dump []byte
	}{
		{"127.0.0.1", "127.0.0.1:19800", []byte{0x4d, 0x58, 127, 0, 0, 1}},
		{"127.0.0.1:19801", "127.0.0.1:19801", []byte{0x4d, 0x59, 127, 0, 0, 1}},
		{"10.1.2.3:1", "10.1.2.3:1", []byte{0, 1, 10, 1, 2, 3}},
		{"[::ffff:127.0.0.1]:5", "127.0.0.1:5", []byte{0, 5, 127, 0, 0, 1}},
		{"localhost:7", "127.0.0.1:7", []byte{0, 7, 127, 0, 0, 1}},
		{"[::1]:80", "[::1]:80", append([]byte{0, 80}, append(netip.IPv6Loopback().AsSlice(), 0, 0, 0, 0)...)},
		{"[::1]", "[::1]:19800", nil},
		{"::1", "[::1]:19800", nil},
		{"[fe80::1%3]:9", "[fe80::1%3]:9", append([]byte{0, 9}, append(netip.MustParseAddr("fe80::1").AsSlice(), 0, 0, 0, 3)...)},
	} {
		a, err := ParseAddr(tc.in, 19800)
		if err != nil {
			t.Errorf("ParseAddr(%q): %v", tc.in, err)
			continue
		}
		if a.String() != tc.want {
			t.Errorf("ParseAddr(%q) = %s, want %s", tc.in, a, tc.want)
		}
		if tc.dump != nil && !bytes.Equal(a.Dump(), tc.dump) {
			t.Errorf("ParseAddr(%q).Dump() = %x, want %x", tc.in, a.Dump(), tc.dump)
		}
		b, err := AddrFromDump(a.Dump())
		if err != nil || b != a {
			t.Errorf("AddrFromDump(Dump(%s)) = %v, %v", a, b, err)
		}
		if len(a.Dump()) != a.DumpSize() {
			t.Errorf("%s: DumpSize %d", a, a.DumpSize())
		}
		if !a.IsValid() {
			t.Errorf("%s: not valid", a)
		}
	}
}

func TestParseAddrErrors(t *testing.T) {
	for _, in := range []string{
		"", ":80", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x",
		"127.0.0.1:-1", "[::1", "[::1]x", "[::1]:", "[]:80", "[fe80::1%nosuchif0]:1",
	} {
		if a, err := ParseAddr(in, 19800); !errors.Is(err, ErrBadAddr) {
			t.Errorf("ParseAddr(%q) = %v, %v; want ErrBadAddr", in, a, err)
		}
	}
	if _, err := ParseAddr("127.0.0.1", 0); !errors.Is(err, ErrBadAddr) {
		t.Errorf("no port and no default: %v", err)
	}
}

func TestAddrFromDumpErrors(t *testing.T) {
	for _, n := range []int{0, 5, 7, 21, 23} {
		if _, err := AddrFromDump(make([]byte, n)); !errors.Is(err, ErrBadAddr) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

// TestCompare checks the kumofs order: memcmp of the dump, port first.
func TestCompare(t *testing.T) {
	ordered := []string{
		"10.0.0.9:1", // lowest port wins over a lower IP
		"[::1]:2",    // same port: the address bytes decide (IPv6 ::1 starts with zeros)
		"9.0.0.1:2",
		"10.0.0.1:2",
		"1.0.0.0:3",
	}
	for i := range ordered {
		for j := range ordered {
			a, b := mustAddr(t, ordered[i]), mustAddr(t, ordered[j])
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestAddrMisc(t *testing.T) {
	var z Addr
	if z.IsValid() || z.String() != "invalid" || z.IP().IsValid() {
		t.Error("zero Addr")
	}
	a := AddrFrom4([4]byte{127, 0, 0, 1}, 19801)
	if a != mustAddr(t, "127.0.0.1:19801") {
		t.Error("AddrFrom4 differs from ParseAddr")
	}
	if a.AddrPort() != netip.MustParseAddrPort("127.0.0.1:19801") || a.Port() != 19801 || a.Is6() {
		t.Errorf("AddrPort %v", a.AddrPort())
	}
	m := map[Addr]int{a: 1}
	if m[AddrFrom16(netip.MustParseAddr("::ffff:127.0.0.1").As16(), 19801, 7)] != 1 {
		t.Error("IPv4-mapped address is a different map key")
	}
	txt, _ := a.MarshalText()
	if string(txt) != "127.0.0.1:19801" {
		t.Errorf("MarshalText %q", txt)
	}
	if _, err := AddrFromAddrPort(netip.AddrPort{}); !errors.Is(err, ErrBadAddr) {
		t.Errorf("invalid AddrPort: %v", err)
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "127.0.0.1:19801", "[::1]:80", "::1", "[fe80::1%3]:9", "host:1", "[::1", ":80"} {
		f.Add(s)
	}
	noDNS := func(string) ([]netip.Addr, error) { return nil, errors.New("no DNS in fuzzing") }
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAddr(s, 19800, noDNS)
		if err != nil {
			if !errors.Is(err, ErrBadAddr) {
				t.Fatalf("%q: error %v does not wrap ErrBadAddr", s, err)
			}
			return
		}
		if !a.IsValid() || a.Port() == 0 {
			t.Fatalf("%q: parsed to %v", s, a)
		}
		b, err := AddrFromDump(a.Dump())
		if err != nil || b != a {
			t.Fatalf("%q: dump round trip %v %v", s, b, err)
		}
		// The text form parses back to the same address.
		c, err := parseAddr(a.String(), 1, noDNS)
		if err != nil || c != a {
			t.Fatalf("%q: String %q parses to %v, %v", s, a.String(), c, err)
		}
	})
}

func FuzzAddrFromDump(f *testing.F) {
	f.Add([]byte{0x4d, 0x59, 127, 0, 0, 1})
	f.Add(make([]byte, DumpSize6))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := AddrFromDump(b)
		if err != nil {
			return
		}
		if a.Compare(a) != 0 {
			t.Fatal("Compare(a, a) != 0")
		}
		if d := a.Dump(); len(d) != len(b) && !(len(b) == DumpSize6 && len(d) == DumpSize4) {
			t.Fatalf("dump %x of %x", d, b)
		}
	})
}
