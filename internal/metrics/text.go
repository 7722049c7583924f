package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ContentType is the HTTP Content-Type of WriteText's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes every family in the Prometheus text exposition format
// 0.0.4: families sorted by name, each with its HELP and TYPE lines, then
// its samples (labelled children sorted by label values; histograms as
// cumulative _bucket{le="…"} lines ending in le="+Inf", then _sum and
// _count). The output for a given set of values is byte-for-byte stable.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	fs := r.sortedFamilies()
	r.mu.Unlock()

	bw := bufio.NewWriter(w)
	var buf []byte
	for _, f := range fs {
		buf = buf[:0]
		buf = append(buf, "# HELP "...)
		buf = append(buf, f.name...)
		buf = append(buf, ' ')
		buf = appendEscaped(buf, f.help, false)
		buf = append(buf, "\n# TYPE "...)
		buf = append(buf, f.name...)
		buf = append(buf, ' ')
		buf = append(buf, f.kind.String()...)
		buf = append(buf, '\n')
		buf = f.appendSamples(buf)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (f *family) appendSamples(buf []byte) []byte {
	switch {
	case f.counter != nil:
		buf = appendSample(buf, f.name, "", nil, nil, "", "", float64(f.counter.Value()))
	case f.gauge != nil:
		buf = appendSample(buf, f.name, "", nil, nil, "", "", float64(f.gauge.Value()))
	case f.fn != nil:
		buf = appendSample(buf, f.name, "", nil, nil, "", "", f.fn())
	case f.hist != nil:
		buf = appendHistogram(buf, f.name, nil, nil, f.hist)
	case f.cvec != nil:
		for _, vals := range sortedTuples(f.cvec.order) {
			buf = appendSample(buf, f.name, "", f.cvec.labels, vals, "", "", float64(f.cvec.children[joinKey(vals)].Value()))
		}
	case f.hvec != nil:
		for _, vals := range sortedTuples(f.hvec.order) {
			buf = appendHistogram(buf, f.name, f.hvec.labels, vals, f.hvec.children[joinKey(vals)])
		}
	case f.gfn != nil:
		type sample struct {
			vals []string
			v    float64
		}
		var ss []sample
		f.gfn(func(vals []string, v float64) {
			if len(vals) != len(f.glabels) {
				panic("metrics: wrong number of label values for " + f.name)
			}
			ss = append(ss, sample{append([]string(nil), vals...), v})
		})
		sort.SliceStable(ss, func(i, j int) bool { return lessTuple(ss[i].vals, ss[j].vals) })
		for _, s := range ss {
			buf = appendSample(buf, f.name, "", f.glabels, s.vals, "", "", s.v)
		}
	}
	return buf
}

func appendHistogram(buf []byte, name string, labels, vals []string, h *Histogram) []byte {
	// Buckets are read one by one while observations may arrive, so the
	// cumulative counts stay monotone; _count is written as the +Inf bucket
	// so the two always agree, as Prometheus requires.
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		buf = appendSample(buf, name, "_bucket", labels, vals, "le", formatFloat(b), float64(cum))
	}
	cum += h.counts[len(h.bounds)].Load()
	buf = appendSample(buf, name, "_bucket", labels, vals, "le", "+Inf", float64(cum))
	buf = appendSample(buf, name, "_sum", labels, vals, "", "", float64(h.sumNs.Load())/1e9)
	buf = appendSample(buf, name, "_count", labels, vals, "", "", float64(cum))
	return buf
}

func appendSample(buf []byte, name, suffix string, labels, vals []string, extraL, extraV string, v float64) []byte {
	buf = append(buf, name...)
	buf = append(buf, suffix...)
	if len(labels) > 0 || extraL != "" {
		buf = append(buf, '{')
		for i, l := range labels {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, l...)
			buf = append(buf, `="`...)
			buf = appendEscaped(buf, vals[i], true)
			buf = append(buf, '"')
		}
		if extraL != "" {
			if len(labels) > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, extraL...)
			buf = append(buf, `="`...)
			buf = append(buf, extraV...)
			buf = append(buf, '"')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ' ')
	buf = append(buf, formatFloat(v)...)
	return append(buf, '\n')
}

// appendEscaped escapes \ and newline (and " in label values), as the text
// format requires.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			buf = append(buf, `\\`...)
		case c == '\n':
			buf = append(buf, `\n`...)
		case c == '"' && quote:
			buf = append(buf, `\"`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// formatFloat formats v as the text format expects: integers without an
// exponent or decimal point, +Inf, -Inf and NaN spelled out.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func sortedTuples(in [][]string) [][]string {
	out := append([][]string(nil), in...)
	sort.Slice(out, func(i, j int) bool { return lessTuple(out[i], out[j]) })
	return out
}

func lessTuple(a, b []string) bool {
	for i := range a {
		if i >= len(b) {
			return false
		}
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// Errors returned by ParseText.
var (
	// ErrSyntax is wrapped by every error about a malformed line.
	ErrSyntax = errors.New("metrics: syntax error")
	// ErrDuplicate is returned for a series that appears twice.
	ErrDuplicate = errors.New("metrics: duplicate series")
)

// maxLine bounds one line of ParseText's input.
const maxLine = 64 << 10

// ParseText reads the Prometheus text format (as WriteText writes it) and
// returns every sample keyed by its series exactly as written after
// normalisation: the name, then the labels sorted by name as
// {a="x",b="y"} with values re-escaped, e.g.
//
//	kumo_requests_total{cmd="get",result="hit"}
//	kumo_request_duration_seconds_bucket{cmd="get",le="0.001"}
//
// Comment lines (# HELP, # TYPE, others) and blank lines are skipped; an
// optional timestamp after the value is accepted and dropped. It is meant
// for tests and tools, not for untrusted high-volume input, though it
// never panics on bad input.
func ParseText(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, v, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrSyntax, n, err)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: line %d: %s", ErrDuplicate, n, key)
		}
		out[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: reading: %w", err)
	}
	return out, nil
}

func parseLine(line string) (string, float64, error) {
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	name := line[:i]
	if !validName(name) {
		return "", 0, fmt.Errorf("bad metric name %q", name)
	}
	var pairs [][2]string
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		var err error
		pairs, rest, err = parseLabels(rest[1:])
		if err != nil {
			return "", 0, err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return "", 0, errors.New("want a value and an optional timestamp")
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return "", 0, err
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return "", 0, fmt.Errorf("bad timestamp %q", fields[1])
		}
	}
	sort.Slice(pairs, func(a, b int) bool { return pairs[a][0] < pairs[b][0] })
	var b []byte
	b = append(b, name...)
	if len(pairs) > 0 {
		b = append(b, '{')
		for k, p := range pairs {
			if k > 0 {
				if p[0] == pairs[k-1][0] {
					return "", 0, fmt.Errorf("duplicate label %q", p[0])
				}
				b = append(b, ',')
			}
			b = append(b, p[0]...)
			b = append(b, `="`...)
			b = appendEscaped(b, p[1], true)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return string(b), v, nil
}

// parseLabels parses `a="x",b="y"}` and returns the pairs and what follows
// the closing brace.
func parseLabels(s string) ([][2]string, string, error) {
	var pairs [][2]string
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return pairs, s[1:], nil
		}
		j := strings.IndexByte(s, '=')
		if j < 0 {
			return nil, "", errors.New("label without =")
		}
		lname := strings.TrimSpace(s[:j])
		if !validLabel(lname) {
			return nil, "", fmt.Errorf("bad label name %q", lname)
		}
		s = strings.TrimLeft(s[j+1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return nil, "", errors.New("label value not quoted")
		}
		s = s[1:]
		var val []byte
		closed := false
		for k := 0; k < len(s); k++ {
			c := s[k]
			if c == '"' {
				s = s[k+1:]
				closed = true
				break
			}
			if c == '\\' {
				if k+1 >= len(s) {
					break
				}
				k++
				switch s[k] {
				case '\\':
					val = append(val, '\\')
				case '"':
					val = append(val, '"')
				case 'n':
					val = append(val, '\n')
				default:
					return nil, "", fmt.Errorf("bad escape \\%c", s[k])
				}
				continue
			}
			val = append(val, c)
		}
		if !closed {
			return nil, "", errors.New("unterminated label value")
		}
		pairs = append(pairs, [2]string{lname, string(val)})
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if !strings.HasPrefix(s, "}") {
			return nil, "", errors.New("want , or } after a label")
		}
	}
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return v, nil
}
