package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"kumofs/proto/msgpack"
	"kumofs/ring"
)

// errBadReply means the manager's answer does not have the expected shape.
var errBadReply = errors.New("bad reply from manager")

// formatTimestamp formats a hash space clocktime as kumofs's Ruby tools do
// (Ruby >= 1.9 Time#to_s in the local zone, then the counter):
// "2026-11-25 17:44:50 +0000 clock 4".
func formatTimestamp(clocktime uint64) string {
	t := time.Unix(int64(clocktime>>32), 0).In(time.Local)
	return t.Format("2006-01-02 15:04:05 -0700") + " clock " + strconv.FormatUint(clocktime&0xffffffff, 10)
}

// formatStatus formats the GetNodesInfo result [wseed, [addr_raw...]].
func formatStatus(b []byte) (string, error) {
	n, b, err := msgpack.ReadArrayHeader(b)
	if err != nil || n < 2 {
		return "", fmt.Errorf("%w: GetNodesInfo is not [wseed, newcomers]", errBadReply)
	}
	hs, b, err := ring.ReadSeed(b)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errBadReply, err)
	}
	cnt, b, err := msgpack.ReadArrayHeader(b)
	if err != nil {
		return "", fmt.Errorf("%w: newcomers: %w", errBadReply, err)
	}
	var newcomers []ring.Addr
	for i := uint32(0); i < cnt; i++ {
		var raw []byte
		if raw, b, err = msgpack.ReadRaw(b); err != nil {
			return "", fmt.Errorf("%w: newcomer %d: %w", errBadReply, i, err)
		}
		a, err := ring.AddrFromDump(raw)
		if err != nil {
			return "", fmt.Errorf("%w: newcomer %d: %w", errBadReply, i, err)
		}
		newcomers = append(newcomers, a)
	}
	var s strings.Builder
	s.WriteString("hash space timestamp:\n  ")
	s.WriteString(formatTimestamp(hs.Clock()))
	s.WriteString("\nattached node:\n")
	for _, nd := range hs.Nodes() {
		state := "fault"
		if nd.Active {
			state = "active"
		}
		fmt.Fprintf(&s, "  %s  (%s)\n", nd.Addr, state)
	}
	s.WriteString("not attached node:\n")
	for _, a := range newcomers {
		fmt.Fprintf(&s, "  %s\n", a)
	}
	return s.String(), nil
}

// inspect renders one msgpack value the way Ruby's `p` prints what
// msgpack-ruby decodes: nil, true, 42, 1.5, "text", [1, 2], {"k"=>1}.
func inspect(b []byte) (string, error) {
	var s strings.Builder
	rest, err := inspectTo(&s, b, 0)
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("%w: %d trailing bytes", errBadReply, len(rest))
	}
	return s.String(), nil
}

func inspectTo(s *strings.Builder, b []byte, depth int) ([]byte, error) {
	if depth > msgpack.MaxDepth {
		return nil, msgpack.ErrTooDeep
	}
	switch msgpack.NextType(b) {
	case msgpack.NilType:
		s.WriteString("nil")
		return msgpack.ReadNil(b)
	case msgpack.BoolType:
		v, rest, err := msgpack.ReadBool(b)
		s.WriteString(strconv.FormatBool(v))
		return rest, err
	case msgpack.IntType:
		if v, rest, err := msgpack.ReadInt(b); err == nil {
			s.WriteString(strconv.FormatInt(v, 10))
			return rest, nil
		}
		v, rest, err := msgpack.ReadUint(b)
		s.WriteString(strconv.FormatUint(v, 10))
		return rest, err
	case msgpack.FloatType:
		v, rest, err := msgpack.ReadFloat64(b)
		s.WriteString(rubyFloat(v))
		return rest, err
	case msgpack.RawType:
		v, rest, err := msgpack.ReadRaw(b)
		s.WriteString(rubyString(v))
		return rest, err
	case msgpack.ArrayType:
		n, rest, err := msgpack.ReadArrayHeader(b)
		if err != nil {
			return nil, err
		}
		s.WriteByte('[')
		for i := uint32(0); i < n; i++ {
			if i > 0 {
				s.WriteString(", ")
			}
			if rest, err = inspectTo(s, rest, depth+1); err != nil {
				return nil, err
			}
		}
		s.WriteByte(']')
		return rest, nil
	case msgpack.MapType:
		n, rest, err := msgpack.ReadMapHeader(b)
		if err != nil {
			return nil, err
		}
		s.WriteByte('{')
		for i := uint32(0); i < n; i++ {
			if i > 0 {
				s.WriteString(", ")
			}
			if rest, err = inspectTo(s, rest, depth+1); err != nil {
				return nil, err
			}
			s.WriteString("=>")
			if rest, err = inspectTo(s, rest, depth+1); err != nil {
				return nil, err
			}
		}
		s.WriteByte('}')
		return rest, nil
	}
	// Ext and invalid bytes: let Skip say what is wrong.
	rest, err := msgpack.Skip(b)
	if err != nil {
		return nil, err
	}
	s.WriteString("#<ext>")
	return rest, nil
}

// rubyFloat formats v as Ruby's Float#inspect does for common values.
func rubyFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// rubyString formats p as Ruby's String#inspect does for a UTF-8 string
// (invalid bytes as \xNN).
func rubyString(p []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for i := 0; i < len(p); {
		c := p[i]
		switch c {
		case '"', '\\':
			s.WriteByte('\\')
			s.WriteByte(c)
		case '\n':
			s.WriteString(`\n`)
		case '\r':
			s.WriteString(`\r`)
		case '\t':
			s.WriteString(`\t`)
		case '\f':
			s.WriteString(`\f`)
		case '\v':
			s.WriteString(`\v`)
		case '\a':
			s.WriteString(`\a`)
		case '\b':
			s.WriteString(`\b`)
		case 0x1b:
			s.WriteString(`\e`)
		case '#':
			// Ruby escapes '#' only where it would start an interpolation.
			if i+1 < len(p) && (p[i+1] == '{' || p[i+1] == '$' || p[i+1] == '@') {
				s.WriteByte('\\')
			}
			s.WriteByte(c)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&s, `\x%02X`, c)
			} else if c < 0x80 {
				s.WriteByte(c)
			} else {
				r, size := utf8.DecodeRune(p[i:])
				if r == utf8.RuneError && size <= 1 {
					fmt.Fprintf(&s, `\x%02X`, c)
				} else {
					s.Write(p[i : i+size])
					i += size
					continue
				}
			}
		}
		i++
	}
	s.WriteByte('"')
	return s.String()
}
