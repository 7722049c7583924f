// Package cli parses kumo command lines with the rules of kumofs's parser
// (kazuhiki), so that an operator's kumofs scripts keep working:
//
//   - each option is a whole argv token matched exactly ("-Ys", "-gN",
//     "--listen"); short options are never combined;
//   - an option's value is the next token; GNU-style "--long=value" is
//     accepted too;
//   - a boolean option sets true, and swallows a following
//     true|yes|on|false|no|off;
//   - a number must consume its whole token;
//   - an unknown token is "unexpected argument: X", a missing required option
//     "required but not set: -x, --xxx";
//   - -h/--help prints the usage on stdout and exits 0, --version prints
//     "<prog> kumo <version>" and exits 0;
//   - on any error the usage goes to stdout, then one line "error: <what is
//     wrong>" to stderr, and the process exits 1 — never a panic.
//
// Typical use:
//
//	fs := cli.New("kumo-server", "usage: kumo-server -l ADDR[:19800] -m MGR -s PATH [options]")
//	fs.String(&store, "-s", "--store", "", "database path", cli.Required)
//	fs.Seconds(&ci, "-Ci", "--clock-interval", 8*time.Second, "clock interval")
//	fs.MustParse(os.Args[1:])
//
// Tools with positional arguments (kumoctl MGR CMD ...) call AllowArgs.
package cli

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Version is the kumo version --version prints; set it with
// -ldflags "-X kumofs/internal/cli.Version=..." or per FlagSet.
var Version = "0.1.0"

// Errors returned by Parse for the built-in options. Exit turns them into
// exit status 0.
var (
	ErrHelp    = errors.New("cli: help requested")
	ErrVersion = errors.New("cli: version requested")
)

// Flag modifies an option.
type Flag int

const (
	// Required makes Parse fail when the option is not given.
	Required Flag = 1 << iota
	// NonNegative makes an Int option refuse values below 0.
	NonNegative
	// Port makes an Int option refuse values outside 1–65535.
	Port
)

// checkInt applies an Int option's NonNegative and Port flags to v.
func checkInt(v int64, s string, flags []Flag) error {
	for _, f := range flags {
		if f&NonNegative != 0 && v < 0 {
			return fmt.Errorf("a non-negative integer is expected: %s", s)
		}
		if f&Port != 0 && (v < 1 || v > 65535) {
			return fmt.Errorf("a port number (1-65535) is expected: %s", s)
		}
	}
	return nil
}

// option is one registered option.
type option struct {
	short, long string
	meta        string // value placeholder in the usage; "" for booleans
	help        string
	def         string // default shown in the usage; "" = none
	required    bool
	isBool      bool
	set         func(string) error
	seen        bool
}

func (o *option) names() string {
	switch {
	case o.short == "":
		return o.long
	case o.long == "":
		return o.short
	}
	return o.short + ", " + o.long
}

// FlagSet is a set of options for one program. Register options, then call
// Parse (or MustParse) once. A FlagSet is not safe for concurrent use.
type FlagSet struct {
	// Stdout receives the usage (help and errors); Stderr the error line.
	Stdout, Stderr io.Writer
	// ExitFunc ends the program; tests replace it. Default os.Exit.
	ExitFunc func(code int)
	// Version overrides the package Version for --version.
	Version string
	// KeepDash keeps a "--" that ends the options as the first of Args
	// (kumohash gives it meaning); by default it is dropped. Only with
	// AllowArgs.
	KeepDash bool

	name    string
	usage   string
	opts    []*option
	byName  map[string]*option
	allowed bool // positional arguments allowed
	args    []string
}

// New returns a FlagSet for the program name. usage is printed verbatim at
// the top of the usage text (a synopsis line or more); the option table is
// generated below it.
func New(name, usage string) *FlagSet {
	return &FlagSet{
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		ExitFunc: os.Exit,
		name:     name,
		usage:    usage,
		byName:   map[string]*option{},
	}
}

// Name returns the program name.
func (fs *FlagSet) Name() string { return fs.name }

// AllowArgs lets the command line carry positional arguments. Option
// parsing stops at the first token that is not an option (or at "--"); that
// token and every later one are returned by Args, verbatim.
func (fs *FlagSet) AllowArgs() { fs.allowed = true }

// Args returns the positional arguments after Parse.
func (fs *FlagSet) Args() []string { return fs.args }

// IsSet reports whether the option with this short or long name was given.
func (fs *FlagSet) IsSet(name string) bool {
	o := fs.byName[name]
	return o != nil && o.seen
}

func (fs *FlagSet) add(o *option, flags []Flag) {
	for _, f := range flags {
		if f&Required != 0 {
			o.required = true
		}
	}
	if o.short == "" && o.long == "" {
		panic("cli: option without a name")
	}
	for _, n := range []string{o.short, o.long} {
		if n == "" {
			continue
		}
		if !strings.HasPrefix(n, "-") || n == "-" || n == "--" {
			panic("cli: option name must start with '-': " + n)
		}
		if fs.byName[n] != nil {
			panic("cli: option registered twice: " + n)
		}
		fs.byName[n] = o
	}
	fs.opts = append(fs.opts, o)
}

// String registers a string option; *p is set to def now.
func (fs *FlagSet) String(p *string, short, long, def, help string, flags ...Flag) {
	*p = def
	fs.add(&option{short: short, long: long, meta: "<string>", help: help, def: def,
		set: func(s string) error { *p = s; return nil }}, flags)
}

// Bool registers a boolean option (default false). It sets true, and
// swallows a following true|yes|on|false|no|off.
func (fs *FlagSet) Bool(p *bool, short, long, help string) {
	*p = false
	fs.add(&option{short: short, long: long, help: help, isBool: true,
		set: func(s string) error {
			v, ok := parseBool(s)
			if !ok {
				return fmt.Errorf("boolean is expected: %s", s)
			}
			*p = v
			return nil
		}}, nil)
}

func parseBool(s string) (v, ok bool) {
	switch s {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

// Int registers a decimal integer option; *p is set to def now.
func (fs *FlagSet) Int(p *int, short, long string, def int, help string, flags ...Flag) {
	*p = def
	fs.add(&option{short: short, long: long, meta: "<num>", help: help, def: strconv.Itoa(def),
		set: func(s string) error {
			v, err := strconv.ParseInt(s, 10, strconv.IntSize)
			if err != nil {
				return fmt.Errorf("integer is expected: %s", s)
			}
			if err := checkInt(v, s, flags); err != nil {
				return err
			}
			*p = int(v)
			return nil
		}}, flags)
}

// Bytes registers a size option in bytes, as memcached's -I takes it: a
// decimal number, optionally followed by k, m or g (either case) for KiB,
// MiB or GiB; *p is set to def now.
func (fs *FlagSet) Bytes(p *int, short, long string, def int, help string, flags ...Flag) {
	*p = def
	fs.add(&option{short: short, long: long, meta: "<bytes>", help: help, def: strconv.Itoa(def),
		set: func(s string) error {
			v, ok := parseBytes(s)
			if !ok {
				return fmt.Errorf("a size is expected (bytes, or a number with k, m or g): %s", s)
			}
			*p = v
			return nil
		}}, flags)
}

// parseBytes reads a size for Bytes.
func parseBytes(s string) (int, bool) {
	shift := 0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
		if shift != 0 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 63-shift)
	if err != nil || v < 0 {
		return 0, false
	}
	return int(v << shift), true
}

// Uint registers a non-negative decimal integer option; *p is set to def now.
func (fs *FlagSet) Uint(p *uint, short, long string, def uint, help string, flags ...Flag) {
	*p = def
	fs.add(&option{short: short, long: long, meta: "<num>", help: help, def: strconv.FormatUint(uint64(def), 10),
		set: func(s string) error {
			v, err := strconv.ParseUint(s, 10, strconv.IntSize)
			if err != nil {
				return fmt.Errorf("unsigned integer is expected: %s", s)
			}
			*p = uint(v)
			return nil
		}}, flags)
}

// Seconds registers a duration given as (possibly fractional) seconds, as
// kumofs's -Ci 0.5; *p is set to def now. Negative values are refused.
func (fs *FlagSet) Seconds(p *time.Duration, short, long string, def time.Duration, help string, flags ...Flag) {
	*p = def
	fs.add(&option{short: short, long: long, meta: "<sec>", help: help,
		def: strconv.FormatFloat(def.Seconds(), 'f', -1, 64),
		set: func(s string) error {
			v, err := parseSeconds(s)
			if err != nil {
				return err
			}
			*p = v
			return nil
		}}, flags)
}

func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(s, "xXpP_") {
		return 0, fmt.Errorf("number of seconds is expected: %s", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("non-negative number of seconds is expected: %s", s)
	}
	if f*1e9 > math.MaxInt64 {
		return 0, fmt.Errorf("number of seconds is too large: %s", s)
	}
	return time.Duration(math.Round(f * 1e9)), nil
}

// Address registers an address option: validate (for example a wrapper of
// ring.ParseAddr with the role's default port) checks the token and may
// resolve it; on success *p is set to the token. *p is set to def now (def
// is not validated).
func (fs *FlagSet) Address(p *string, short, long, def, help string, validate func(string) error, flags ...Flag) {
	*p = def
	fs.Func(short, long, "<addr[:port]>", def, help, func(s string) error {
		if err := validate(s); err != nil {
			return err
		}
		*p = s
		return nil
	}, flags...)
}

// OrEmpty accepts the empty string as well as what validate accepts: an
// optional address given as an empty value (a unit file's -p ${PARTNER}
// for a single manager) means none.
func OrEmpty(validate func(string) error) func(string) error {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return validate(s)
	}
}

// Func registers an option whose value is handed to set; meta is the value
// placeholder and def the default shown in the usage ("" for none). An error
// from set becomes "argument error `<opt>': <err>".
func (fs *FlagSet) Func(short, long, meta, def, help string, set func(string) error, flags ...Flag) {
	if meta == "" {
		meta = "<value>"
	}
	fs.add(&option{short: short, long: long, meta: meta, help: help, def: def, set: set}, flags)
}

// Parse parses args (without the program name). It returns ErrHelp or
// ErrVersion for the built-in options, and otherwise the first error.
// Parse writes nothing; pass its error to Exit.
func (fs *FlagSet) Parse(args []string) error {
	fs.args = nil
	for i := 0; i < len(args); i++ {
		tok := args[i]
		name, value, hasValue := tok, "", false
		if strings.HasPrefix(tok, "--") && fs.byName[tok] == nil {
			if k, v, ok := strings.Cut(tok, "="); ok {
				name, value, hasValue = k, v, true
			}
		}
		o := fs.byName[name]
		if o == nil {
			switch {
			case name == "-h" || name == "--help":
				return ErrHelp
			case name == "--version":
				return ErrVersion
			case fs.allowed && tok == "--":
				if fs.KeepDash {
					fs.args = args[i:]
				} else {
					fs.args = args[i+1:]
				}
				return fs.checkRequired()
			case fs.allowed && (!strings.HasPrefix(tok, "-") || tok == "-"):
				fs.args = args[i:]
				return fs.checkRequired()
			}
			return fmt.Errorf("unexpected argument: %s", tok)
		}
		if !hasValue {
			if o.isBool {
				value = "true"
				if i+1 < len(args) {
					if _, ok := parseBool(args[i+1]); ok {
						i++
						value = args[i]
					}
				}
			} else {
				if i+1 >= len(args) {
					return fmt.Errorf("argument error `%s': value is required", name)
				}
				i++
				value = args[i]
			}
		}
		if err := o.set(value); err != nil {
			return fmt.Errorf("argument error `%s': %w", name, err)
		}
		o.seen = true
	}
	return fs.checkRequired()
}

func (fs *FlagSet) checkRequired() error {
	var missing []string
	for _, o := range fs.opts {
		if o.required && !o.seen {
			missing = append(missing, o.names())
		}
	}
	if missing != nil {
		return fmt.Errorf("required but not set: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Usage returns the usage text: the synopsis given to New, then a table of
// the options.
func (fs *FlagSet) Usage() string {
	var b strings.Builder
	b.WriteString(fs.usage)
	if fs.usage != "" && !strings.HasSuffix(fs.usage, "\n") {
		b.WriteByte('\n')
	}
	type row struct{ left, right string }
	var rows []row
	for _, o := range fs.opts {
		left := "  "
		if o.short == "" {
			left += "    " + o.long
		} else {
			left += o.names()
		}
		if !o.isBool {
			left += " " + o.meta
		}
		right := o.help
		switch {
		case o.required:
			right += " (required)"
		case o.def != "" && !o.isBool:
			right += " (default: " + o.def + ")"
		}
		rows = append(rows, row{left, strings.TrimSpace(right)})
	}
	if fs.byName["-h"] == nil && fs.byName["--help"] == nil {
		rows = append(rows, row{"  -h, --help", "print this help and exit"})
	}
	if fs.byName["--version"] == nil {
		rows = append(rows, row{"      --version", "print the version and exit"})
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r.left))
	}
	if fs.usage != "" {
		b.WriteByte('\n')
	}
	b.WriteString("options:\n")
	for _, r := range rows {
		b.WriteString(r.left)
		if r.right != "" {
			b.WriteString(strings.Repeat(" ", width-len(r.left)+2))
			b.WriteString(r.right)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// VersionLine returns what --version prints, without the newline.
func (fs *FlagSet) VersionLine() string {
	v := fs.Version
	if v == "" {
		v = Version
	}
	return fs.name + " kumo " + v
}

// Exit handles the result of Parse (or any usage error found later): nil
// returns at once; ErrHelp prints the usage on Stdout and exits 0;
// ErrVersion prints the version line and exits 0; any other error prints the
// usage on Stdout and "error: <err>" on Stderr and exits 1. Exit returns
// only when err is nil or ExitFunc returns.
func (fs *FlagSet) Exit(err error) {
	switch {
	case err == nil:
		return
	case errors.Is(err, ErrHelp):
		io.WriteString(fs.Stdout, fs.Usage())
		fs.ExitFunc(0)
	case errors.Is(err, ErrVersion):
		io.WriteString(fs.Stdout, fs.VersionLine()+"\n")
		fs.ExitFunc(0)
	default:
		io.WriteString(fs.Stdout, fs.Usage())
		msg := strings.ReplaceAll(strings.TrimRight(err.Error(), "\n"), "\n", " ")
		io.WriteString(fs.Stderr, "error: "+msg+"\n")
		fs.ExitFunc(1)
	}
}

// Fail reports a usage error found after Parse (a bad positional argument,
// say) the same way as a parse error: Exit(fmt.Errorf(format, args...)).
func (fs *FlagSet) Fail(format string, args ...any) {
	fs.Exit(fmt.Errorf(format, args...))
}

// MustParse parses args and, on an error or help/version, calls Exit.
// It returns only when parsing succeeded (or ExitFunc returned).
func (fs *FlagSet) MustParse(args []string) {
	fs.Exit(fs.Parse(args))
}

// ListenAddr turns a kumofs "listenable" option value into host:port:
// "port" and ":port" mean every address, "host" alone the default port,
// and "" stays "" (not set).
func ListenAddr(s string, def int) (string, error) {
	if s == "" {
		return "", nil
	}
	if p, err := strconv.Atoi(s); err == nil {
		if p < 0 || p > 65535 {
			return "", fmt.Errorf("bad port %s", s)
		}
		return net.JoinHostPort("0.0.0.0", strconv.Itoa(p)), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return net.JoinHostPort(s, strconv.Itoa(def)), nil
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("bad port in %s", s)
	}
	return net.JoinHostPort(host, port), nil
}

// Listenable returns a validator for Address options parsed by ListenAddr.
func Listenable(def int) func(string) error {
	return func(s string) error { _, err := ListenAddr(s, def); return err }
}
