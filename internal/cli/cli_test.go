package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// server is a kumo-server-like option set.
type server struct {
	fs      *FlagSet
	listen  string
	store   string
	verbose bool
	ys      time.Duration
	gn      int
	tw      uint
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	code    int
	exited  bool
}

func newServer() *server {
	s := &server{code: -1}
	fs := New("kumo-server", "usage: kumo-server -l ADDR -s PATH [options]")
	fs.Stdout, fs.Stderr = &s.stdout, &s.stderr
	fs.ExitFunc = func(c int) { s.code, s.exited = c, true }
	fs.Version = "1.2.3"
	fs.Address(&s.listen, "-l", "--listen", "", "address of this node", func(a string) error {
		if !strings.Contains(a, ".") {
			return fmt.Errorf("bad address: %s", a)
		}
		return nil
	}, Required)
	fs.String(&s.store, "-s", "--store", "", "database path", Required)
	fs.Bool(&s.verbose, "-v", "--verbose", "verbose mode")
	fs.Seconds(&s.ys, "-Ys", "--connect-timeout", 10*time.Second, "connect timeout")
	fs.Int(&s.gn, "-gN", "--garbage-min-time", 60, "")
	fs.Uint(&s.tw, "-TW", "--write-threads", 2, "write threads")
	s.fs = fs
	return s
}

func TestParseOK(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		verbose bool
		ys      time.Duration
		gn      int
		tw      uint
		store   string
	}{
		{"defaults", []string{"-l", "127.0.0.1", "-s", "db"}, false, 10 * time.Second, 60, 2, "db"},
		{"long forms", []string{"--listen", "127.0.0.1", "--store", "x", "--verbose"}, true, 10 * time.Second, 60, 2, "x"},
		{"gnu long", []string{"--listen=127.0.0.1", "--store=a=b", "--connect-timeout=0.5", "--verbose=off"}, false, 500 * time.Millisecond, 60, 2, "a=b"},
		{"bool swallows yes", []string{"-v", "yes", "-l", "1.2.3.4", "-s", "d"}, true, 10 * time.Second, 60, 2, "d"},
		{"bool swallows false", []string{"-v", "false", "-l", "1.2.3.4", "-s", "d"}, false, 10 * time.Second, 60, 2, "d"},
		{"bool swallows on", []string{"-l", "1.2.3.4", "-s", "d", "-v", "on"}, true, 10 * time.Second, 60, 2, "d"},
		{"bool at end", []string{"-l", "1.2.3.4", "-s", "d", "-v"}, true, 10 * time.Second, 60, 2, "d"},
		{"bool keeps next option", []string{"-v", "-l", "1.2.3.4", "-s", "d"}, true, 10 * time.Second, 60, 2, "d"},
		{"numbers", []string{"-l", "1.2.3.4", "-s", "d", "-gN", "-5", "-TW", "8", "-Ys", "3"}, false, 3 * time.Second, -5, 8, "d"},
		{"value looks like option", []string{"-l", "1.2.3.4", "-s", "-v"}, false, 10 * time.Second, 60, 2, "-v"},
		{"later wins", []string{"-l", "1.2.3.4", "-s", "a", "-s", "b"}, false, 10 * time.Second, 60, 2, "b"},
	} {
		s := newServer()
		if err := s.fs.Parse(tc.args); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if s.verbose != tc.verbose || s.ys != tc.ys || s.gn != tc.gn || s.tw != tc.tw || s.store != tc.store {
			t.Errorf("%s: verbose=%v ys=%v gn=%d tw=%d store=%q", tc.name, s.verbose, s.ys, s.gn, s.tw, s.store)
		}
		if !s.fs.IsSet("-l") || !s.fs.IsSet("--listen") {
			t.Errorf("%s: -l not marked set", tc.name)
		}
	}
}

func TestParseErrors(t *testing.T) {
	base := []string{"-l", "127.0.0.1", "-s", "db"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-s", "db"}, "required but not set: -l, --listen"},
		{nil, "required but not set: -l, --listen, -s, --store"},
		{append(base, "-x"), "unexpected argument: -x"},
		{append(base, "extra"), "unexpected argument: extra"},
		{append(base, "-vYs"), "unexpected argument: -vYs"},             // never combined
		{append(base, "-Ys3"), "unexpected argument: -Ys3"},             // value is the next token
		{append(base, "-l=1.2.3.4"), "unexpected argument: -l=1.2.3.4"}, // = only for long options
		{append(base, "--nope=1"), "unexpected argument: --nope=1"},
		{append(base, "-Ys"), "argument error `-Ys': value is required"},
		{append(base, "-Ys", "abc"), "argument error `-Ys': number of seconds is expected: abc"},
		{append(base, "-Ys", "1s"), "argument error `-Ys': number of seconds is expected: 1s"},
		{append(base, "-Ys", "NaN"), "argument error `-Ys': number of seconds is expected: NaN"},
		{append(base, "-Ys", "0x10"), "argument error `-Ys': number of seconds is expected: 0x10"},
		{append(base, "-Ys", "-1"), "argument error `-Ys': non-negative number of seconds is expected: -1"},
		{append(base, "-Ys", "1e300"), "argument error `-Ys': number of seconds is too large: 1e300"},
		{append(base, "-gN", "12x"), "argument error `-gN': integer is expected: 12x"},
		{append(base, "-gN", "1.5"), "argument error `-gN': integer is expected: 1.5"},
		{append(base, "-gN", ""), "argument error `-gN': integer is expected: "},
		{append(base, "-gN", "99999999999999999999"), "argument error `-gN': integer is expected: 99999999999999999999"},
		{append(base, "-TW", "-1"), "argument error `-TW': unsigned integer is expected: -1"},
		{append(base, "--verbose=maybe"), "argument error `--verbose': boolean is expected: maybe"},
		{[]string{"-l", "nodots", "-s", "d"}, "argument error `-l': bad address: nodots"},
		{append(base, "--"), "unexpected argument: --"}, // no positional arguments here
	} {
		s := newServer()
		err := s.fs.Parse(tc.args)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestExitOutputs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // "" = the usage
		stderr     string
		wantParsed bool
	}{
		{"help", []string{"-h"}, 0, "", "", false},
		{"long help after options", []string{"-l", "1.2.3.4", "--help"}, 0, "", "", false},
		{"version", []string{"--version"}, 0, "kumo-server kumo 1.2.3\n", "", false},
		{"error", []string{"-q"}, 1, "", "error: unexpected argument: -q\n", false},
		{"ok", []string{"-l", "1.2.3.4", "-s", "x"}, -1, "-", "", true},
	} {
		s := newServer()
		s.fs.MustParse(tc.args)
		if s.code != tc.code {
			t.Errorf("%s: exit code %d, want %d", tc.name, s.code, tc.code)
		}
		want := tc.stdout
		switch want {
		case "":
			want = s.fs.Usage()
		case "-":
			want = ""
		}
		if s.stdout.String() != want {
			t.Errorf("%s: stdout %q, want %q", tc.name, s.stdout.String(), want)
		}
		if s.stderr.String() != tc.stderr {
			t.Errorf("%s: stderr %q, want %q", tc.name, s.stderr.String(), tc.stderr)
		}
	}
}

func TestUsageText(t *testing.T) {
	s := newServer()
	want := `usage: kumo-server -l ADDR -s PATH [options]

options:
  -l, --listen <addr[:port]>     address of this node (required)
  -s, --store <string>           database path (required)
  -v, --verbose                  verbose mode
  -Ys, --connect-timeout <sec>   connect timeout (default: 10)
  -gN, --garbage-min-time <num>  (default: 60)
  -TW, --write-threads <num>     write threads (default: 2)
  -h, --help                     print this help and exit
      --version                  print the version and exit
`
	if got := s.fs.Usage(); got != want {
		t.Errorf("usage:\n%s\nwant:\n%s", got, want)
	}
}

func TestPositional(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		keepDash bool
		mgr      string
		rest     []string
		err      string
	}{
		{[]string{"127.0.0.1", "status"}, false, "", []string{"127.0.0.1", "status"}, ""},
		{[]string{"-m", "mgr", "hash", "-m", "x"}, false, "mgr", []string{"hash", "-m", "x"}, ""},
		{[]string{"s1", "s2", "--", "dump"}, false, "", []string{"s1", "s2", "--", "dump"}, ""},
		{[]string{"--", "-m"}, false, "", []string{"-m"}, ""},
		{[]string{"--", "hash", "a"}, true, "", []string{"--", "hash", "a"}, ""},
		{[]string{"-", "x"}, false, "", []string{"-", "x"}, ""},
		{[]string{"-z", "x"}, false, "", nil, "unexpected argument: -z"},
		{[]string{}, false, "", nil, ""},
	} {
		var mgr string
		fs := New("kumohash", "usage")
		fs.AllowArgs()
		fs.KeepDash = tc.keepDash
		fs.String(&mgr, "-m", "", "", "manager")
		err := fs.Parse(tc.args)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err %v, want %s", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || mgr != tc.mgr || strings.Join(fs.Args(), "|") != strings.Join(tc.rest, "|") {
			t.Errorf("%q: err %v mgr %q args %q", tc.args, err, mgr, fs.Args())
		}
	}
}

func TestRequiredWithPositional(t *testing.T) {
	var m string
	fs := New("kumostat", "usage")
	fs.AllowArgs()
	fs.String(&m, "-m", "--manager", "", "", Required)
	if err := fs.Parse([]string{"cmd"}); err == nil || err.Error() != "required but not set: -m, --manager" {
		t.Errorf("err %v", err)
	}
}

func TestUserHelpOption(t *testing.T) {
	var head bool
	fs := New("kumolog", "usage")
	fs.Bool(&head, "-h", "--head", "head mode")
	if err := fs.Parse([]string{"-h"}); err != nil || !head {
		t.Fatalf("user -h: %v %v", err, head)
	}
	if err := fs.Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if strings.Contains(fs.Usage(), "-h, --help") {
		t.Error("usage lists the built-in -h although the program took it")
	}
}

func TestFail(t *testing.T) {
	s := newServer()
	s.fs.Fail("unknown command %s", "x")
	if s.code != 1 || s.stderr.String() != "error: unknown command x\n" || s.stdout.String() != s.fs.Usage() {
		t.Errorf("Fail: %d %q", s.code, s.stderr.String())
	}
	s = newServer()
	s.fs.Exit(errors.New("two\nlines\n"))
	if s.stderr.String() != "error: two lines\n" {
		t.Errorf("multi-line error %q", s.stderr.String())
	}
	s = newServer()
	s.fs.Exit(nil)
	if s.exited {
		t.Error("Exit(nil) exited")
	}
}

func TestRegisterPanics(t *testing.T) {
	for _, reg := range []func(fs *FlagSet){
		func(fs *FlagSet) { var b bool; fs.Bool(&b, "-v", "", ""); fs.Bool(&b, "-v", "", "") },
		func(fs *FlagSet) { var b bool; fs.Bool(&b, "", "", "") },
		func(fs *FlagSet) { var b bool; fs.Bool(&b, "v", "", "") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			reg(New("x", ""))
		}()
	}
}

func FuzzParse(f *testing.F) {
	f.Add("-l\x00127.0.0.1\x00-s\x00db\x00-v\x00on")
	f.Add("--connect-timeout=1.5\x00-gN\x00-3")
	f.Add("-h")
	f.Fuzz(func(t *testing.T, joined string) {
		s := newServer()
		args := strings.Split(joined, "\x00")
		err := s.fs.Parse(args)
		s.fs.Exit(err)
		if err != nil && !errors.Is(err, ErrHelp) && !errors.Is(err, ErrVersion) {
			if s.code != 1 || !strings.HasPrefix(s.stderr.String(), "error: ") ||
				strings.Count(s.stderr.String(), "\n") != 1 {
				t.Fatalf("error output %q code %d", s.stderr.String(), s.code)
			}
		}
	})
}

func TestParseBytes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"8m", 8 << 20, true}, {"8M", 8 << 20, true}, {"512k", 512 << 10, true},
		{"1g", 1 << 30, true}, {"0", 0, true}, {"", 0, false}, {"m", 0, false}, {"-1", 0, false},
		{"1.5m", 0, false}, {"8mb", 0, false}, {"9999999999999g", 0, false},
	} {
		if got, ok := parseBytes(c.in); got != c.want || ok != c.ok {
			t.Errorf("parseBytes(%q) = %d %v, want %d %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// Ensure that Int options flagged Port or NonNegative refuse values out of
// range with one clear line, and take those in range.
func TestIntRanges(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		want       string // "" = accepted
		port, cons int
	}{
		{nil, "", 19900, 4096},
		{[]string{"-L", "1", "--max-conns", "0"}, "", 1, 0},
		{[]string{"-L", "65535"}, "", 65535, 4096},
		{[]string{"-L", "0"}, "argument error `-L': a port number (1-65535) is expected: 0", 0, 0},
		{[]string{"-L", "65536"}, "argument error `-L': a port number (1-65535) is expected: 65536", 0, 0},
		{[]string{"-L", "-80"}, "argument error `-L': a port number (1-65535) is expected: -80", 0, 0},
		{[]string{"--max-conns", "-1"}, "argument error `--max-conns': a non-negative integer is expected: -1", 0, 0},
	} {
		fs := New("kumo-server", "usage")
		var port, conns int
		fs.Int(&port, "-L", "--stream-listen", 19900, "stream port", Port)
		fs.Int(&conns, "", "--max-conns", 4096, "connections", NonNegative)
		err := fs.Parse(tc.args)
		switch {
		case tc.want == "" && (err != nil || port != tc.port || conns != tc.cons):
			t.Errorf("Parse(%q) = %v, port %d, conns %d; want port %d, conns %d", tc.args, err, port, conns, tc.port, tc.cons)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("Parse(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
	for _, s := range []string{"99999", "127.0.0.1:65536", "[::1]:-1", "h:70000"} {
		if a, err := ListenAddr(s, 11211); err == nil {
			t.Errorf("ListenAddr(%q) = %q, want an error", s, a)
		}
	}
	for s, want := range map[string]string{"11211": "0.0.0.0:11211", "127.0.0.1:0": "127.0.0.1:0", "h": "h:11211", ":65535": "0.0.0.0:65535"} {
		if a, err := ListenAddr(s, 11211); err != nil || a != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", s, a, err, want)
		}
	}
}

func TestOrEmpty(t *testing.T) {
	bad := errors.New("bad")
	v := OrEmpty(func(s string) error {
		if s == "x" {
			return nil
		}
		return bad
	})
	if v("") != nil || v("x") != nil || v("y") != bad {
		t.Fatalf("OrEmpty: %v %v %v", v(""), v("x"), v("y"))
	}
}
