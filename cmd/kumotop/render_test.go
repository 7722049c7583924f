package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	// Times are shown in the local zone; the golden files are in UTC.
	time.Local = time.UTC
	os.Exit(m.Run())
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var (
	t0      = time.Date(2026, 11, 25, 17, 44, 50, 0, time.UTC)
	clock0  = uint64(t0.Unix())<<32 | 4
	errDial = errors.New("cannot reach: dial tcp 127.0.0.1:19803: connect: connection refused")
)

// mkrow builds a row from a previous and a current sample as round does.
func mkrow(addr string, prev *sample, cur sample, err error) row {
	r := row{addr: addr, cur: cur, prev: prev, err: err}
	r.setRates()
	return r
}

// testFrames are the fixed samples the golden files show.
func testFrames() map[string]*frame {
	at := t0.Add(time.Second)
	prev := sample{at: t0.Add(500 * time.Millisecond), get: 1000, set: 500, del: 3, items: 12345, clock: clock0, repl: "ready"}
	return map[string]*frame{
		"servers": {now: at, hint: "q: quit", rows: []row{
			mkrow("127.0.0.1:19801", &prev, sample{at: at, get: 1100, set: 510, del: 3, items: 12350, clock: clock0 + 1<<32 + 17, repl: "ready"}, nil),
			mkrow("127.0.0.1:19802", nil, sample{at: at, get: 7, set: 123456789012, del: 0, items: 0, clock: clock0, repl: "Copying"}, nil),
			mkrow("127.0.0.1:19803", nil, sample{}, errDial),
			mkrow("192.168.100.200:65535", &prev, sample{at: at, get: 1, set: 2, del: 3, items: 4, clock: 0, repl: "?"}, nil), // restarted
			mkrow("10.0.0.5:19800", &prev, sample{at: at, get: 1001, set: 500, del: 4, items: 12345, clock: clock0 + 4000000000, repl: "Deleting"}, nil),
			mkrow("10.0.0.6:19800", nil, sample{}, errors.New("rpc error 6\nsecond line\x1b[31m")),
		}},
		"manager": {now: at, source: "manager 127.0.0.1:19700", rows: []row{
			mkrow("127.0.0.1:19801", &prev, sample{at: at, get: 1000, set: 500, del: 3, items: 12345, clock: clock0, repl: "inactive"}, nil),
			mkrow("127.0.0.1:19802", nil, sample{at: at, repl: "WAIT"}, nil),
		}},
		"manager_error": {now: at, source: "manager 127.0.0.1:19700",
			err: errors.New("manager 127.0.0.1:19700: cannot reach: dial tcp 127.0.0.1:19700: connect: connection refused")},
		"ipv6": {now: at, rows: []row{
			mkrow("[2001:db8:1234:5678:9abc:def0:1234:5678]:19800", &prev, sample{at: at, get: 2000, set: 1000, del: 6, items: 1, clock: clock0, repl: "ready"}, nil),
			mkrow("[::1]:19800", nil, sample{at: at, repl: "ready"}, nil),
		}},
	}
}

func TestRenderGolden(t *testing.T) {
	for name, f := range testFrames() {
		for _, width := range []int{80, 129, 130, 160} {
			t.Run(name+"_"+strconv.Itoa(width), func(t *testing.T) {
				lines := render(f, width)
				for i, l := range lines {
					if n := len([]rune(l)); n > width {
						t.Errorf("line %d is %d columns wide, more than %d: %q", i, n, width, l)
					}
				}
				golden(t, name+"_"+strconv.Itoa(width), []byte(strings.Join(lines, "\n")+"\n"))
			})
		}
	}
}

// TestRenderLayout checks which layout each width gets.
func TestRenderLayout(t *testing.T) {
	f := testFrames()
	for _, tc := range []struct {
		frame string
		width int
		lines int // header lines (3 or 4) + rows
	}{
		{"servers", 40, 4 + 6 + 4},  // two lines per good row, one per error row
		{"servers", 129, 4 + 6 + 4}, // two-line layout
		{"servers", 130, 3 + 6},     // one line per server
		{"servers", 500, 3 + 6},
		{"ipv6", 154, 4 + 4}, // a 46-column address needs 155 columns for one line
		{"ipv6", 155, 3 + 2},
		{"manager_error", 80, 4},
	} {
		if got := len(render(f[tc.frame], tc.width)); got != tc.lines {
			t.Errorf("%s at %d columns: %d lines, want %d", tc.frame, tc.width, got, tc.lines)
		}
	}
}

func TestSetRates(t *testing.T) {
	prev := sample{at: t0, get: 10, set: 20, del: 30}
	for _, tc := range []struct {
		name  string
		prev  *sample
		cur   sample
		err   error
		rated bool
		rates [3]float64
	}{
		{"first", nil, sample{at: t0.Add(time.Second)}, nil, false, [3]float64{}},
		{"half second", &prev, sample{at: t0.Add(500 * time.Millisecond), get: 11, set: 30, del: 30}, nil, true, [3]float64{2, 20, 0}},
		{"two seconds", &prev, sample{at: t0.Add(2 * time.Second), get: 15, set: 20, del: 31}, nil, true, [3]float64{2.5, 0, 0.5}},
		{"restarted", &prev, sample{at: t0.Add(time.Second), get: 11, set: 21, del: 0}, nil, false, [3]float64{}},
		{"same time", &prev, sample{at: t0, get: 11, set: 21, del: 31}, nil, false, [3]float64{}},
		{"error", &prev, sample{}, errDial, false, [3]float64{}},
	} {
		r := row{prev: tc.prev, cur: tc.cur, err: tc.err}
		r.setRates()
		if r.rated != tc.rated || (r.rated && r.rates != tc.rates) {
			t.Errorf("%s: rated %v %v, want %v %v", tc.name, r.rated, r.rates, tc.rated, tc.rates)
		}
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		s     string
		width int
		want  string
	}{
		{"abcdef", 3, "abc"},
		{"abc", 3, "abc"},
		{"abc", 0, "abc"},
		{"äöüß", 2, "äö"},
	} {
		if got := cut(tc.s, tc.width); got != tc.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tc.s, tc.width, got, tc.want)
		}
	}
}

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		w    int
		want string
	}{
		{0, 10, "0"},
		{9999999999, 10, "9999999999"},
		{12345678901, 10, "12345.7M"},
		{123456789012, 10, "123456.8M"},
		{4000000004, 6, "4.0G"},
		{999999, 6, "999999"},
		{1000000, 6, "1.0M"},
		{1<<64 - 1, 4, "18.4E"}, // the largest unit, even if too wide
	} {
		if got := fit(tc.v, tc.w); got != tc.want {
			t.Errorf("fit(%d, %d) = %q, want %q", tc.v, tc.w, got, tc.want)
		}
	}
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0.0"},
		{123456.7, "123456.7"},
		{1234567.8, "1234.6k"},
	} {
		if got := rate(tc.v); got != tc.want {
			t.Errorf("rate(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// FuzzRender: whatever the addresses, error texts, counters and width, no
// line is wider than the width and no control character reaches the
// screen.
func FuzzRender(f *testing.F) {
	f.Add("127.0.0.1:19801", "cannot reach: connection refused", uint64(1), uint64(2), uint64(3), uint64(4), clock0, "ready", 80)
	f.Add("[2001:db8:1234:5678:9abc:def0:1234:5678]:19800", "", uint64(1<<64-1), uint64(0), uint64(1e12), uint64(5), uint64(1<<64-1), "?", 130)
	f.Add("x", "line\nbreak\x1b[2J\ttab", uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), "Deleting", 1)
	f.Add("äöü:1", "日本語のエラー", uint64(9), uint64(99), uint64(999), uint64(9999), clock0, "WAIT", 12)
	f.Fuzz(func(t *testing.T, addr, errText string, get, set, del, items, clock uint64, repl string, width int) {
		if width <= 0 || width > 1000 {
			return
		}
		prev := sample{at: t0, get: get / 2, set: set / 3, del: del / 4}
		r := mkrow(addr, &prev, sample{at: t0.Add(time.Second), get: get, set: set, del: del, items: items, clock: clock, repl: "ready"}, nil)
		var bad row
		if errText != "" {
			bad = mkrow(addr, nil, sample{}, errors.New(errText))
		} else {
			bad = mkrow(addr, nil, sample{at: t0, repl: repl}, nil)
		}
		f := &frame{now: t0, source: "manager " + addr, err: errors.New(errText), rows: []row{r, bad}}
		for _, l := range render(f, width) {
			if n := len([]rune(l)); n > width {
				t.Fatalf("line of %d runes at width %d: %q", n, width, l)
			}
			for _, c := range l {
				if c < ' ' || c == 0x7f {
					t.Fatalf("control character %q on screen: %q", c, l)
				}
			}
		}
	})
}

// BenchmarkRender lays out the six-server test frame at 160 columns.
func BenchmarkRender(b *testing.B) {
	f := testFrames()["servers"]
	for b.Loop() {
		render(f, 160)
	}
}
