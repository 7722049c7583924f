package daemon

import "testing"

func TestFitConns(t *testing.T) {
	cases := []struct {
		want  int
		share float64
		limit uint64
		fit   int
		note  string
	}{
		{4096, 1, 65536, 4096, ""},
		{4096, 1, 256, 192, "--max-conns 4096 lowered to 192: the process may open only 256 files (ulimit -n)"},
		{4096, 0.5, 256, 96, "--max-conns 4096 lowered to 96: the process may open only 256 files (ulimit -n)"},
		{100, 1, 256, 100, ""},
		{0, 1, 1024, 960, "--max-conns 0 (unlimited) lowered to 960: the process may open only 1024 files (ulimit -n)"},
		{0, 1, 1 << 40, 0, ""}, // unlimited stays unlimited
		{4096, 1, 32, 1, "--max-conns 4096 lowered to 1: the process may open only 32 files (ulimit -n)"},
	}
	for _, c := range cases {
		fit, note := fitConns("--max-conns", c.want, c.share, c.limit)
		if fit != c.fit || note != c.note {
			t.Errorf("fitConns(%d, %v, %d) = %d, %q; want %d, %q", c.want, c.share, c.limit, fit, note, c.fit, c.note)
		}
	}
}
