package metrics

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzParseText checks that ParseText never panics, that it reads the
// same from a one-byte reader, and that what it accepts survives being
// written back in normalised form and parsed again.
func FuzzParseText(f *testing.F) {
	var buf bytes.Buffer
	sample().WriteText(&buf)
	f.Add(buf.String())
	f.Add("x 1\n")
	f.Add(`x{a="b\"c\\d\ne"} -1.5e3 1700000000` + "\n")
	f.Add("# TYPE x counter\nx +Inf\ny NaN\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseText(strings.NewReader(in))
		m2, err2 := ParseText(iotest.OneByteReader(strings.NewReader(in)))
		if (err == nil) != (err2 == nil) || len(m) != len(m2) {
			t.Fatalf("one-byte reader differs: %v / %v", err, err2)
		}
		if err != nil {
			return
		}
		var out strings.Builder
		for k, v := range m {
			out.WriteString(k)
			out.WriteByte(' ')
			out.WriteString(formatFloat(v))
			out.WriteByte('\n')
		}
		back, err := ParseText(strings.NewReader(out.String()))
		if err != nil {
			t.Fatalf("normalised output does not parse: %v\n%s", err, out.String())
		}
		for k, v := range m {
			w, ok := back[k]
			if !ok || (w != v && !(math.IsNaN(v) && math.IsNaN(w))) {
				t.Fatalf("%s: %v then %v", k, v, w)
			}
		}
	})
}
