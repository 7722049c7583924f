package main

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// sample is one server's status at one moment.
type sample struct {
	at                   time.Time
	get, set, del, items uint64
	clock                uint64 // STAT_CLOCKTIME: (unix_seconds << 32) | counter
	repl                 string // replstat string, "?" when the server sent nil
}

// row is one server's line(s) in a frame.
type row struct {
	addr  string
	cur   sample
	prev  *sample // the previous good sample, for rates; nil on the first
	err   error   // the sample failed; only addr and err are shown
	rates [3]float64
	rated bool // rates are known
}

// frame is everything one screen shows.
type frame struct {
	now    time.Time
	source string // "manager ADDR" or "" for a server list
	hint   string // key help for the title ("q: quit"), "" when keys are not read
	err    error  // the manager could not be asked (the rows are the last known list)
	rows   []row
}

// Column layout. A wide line is addrWidth+wideFixed columns: with the
// minimum address width that is 130, the width kumofs's kumotop switched
// to one line per server at.
const (
	minAddrWidth = len("255.255.255.255:65535")
	wideMin      = 130
	timeLayout   = "2006-01-02 15:04:05"
)

// setRates fills r.rates from r.prev: per second, from the previous good
// sample. Counters that went down (a restarted server) give no rate.
func (r *row) setRates() {
	r.rated = false
	if r.err != nil || r.prev == nil {
		return
	}
	dt := r.cur.at.Sub(r.prev.at).Seconds()
	if dt <= 0 {
		return
	}
	cur := [3]uint64{r.cur.get, r.cur.set, r.cur.del}
	old := [3]uint64{r.prev.get, r.prev.set, r.prev.del}
	for i := range cur {
		if cur[i] < old[i] {
			return
		}
		r.rates[i] = float64(cur[i]-old[i]) / dt
	}
	r.rated = true
}

// render lays f out for a terminal width columns wide: one line per server
// when width is at least 130 (and the addresses fit), two lines otherwise.
// Every line is cut to width.
func render(f *frame, width int) []string {
	aw := minAddrWidth
	for _, r := range f.rows {
		aw = max(aw, len(r.addr))
	}
	wide := width >= wideMin && width >= aw+wideMin-minAddrWidth

	var lines []string
	title := "kumotop  " + f.now.In(time.Local).Format(timeLayout) + "  " + plural(len(f.rows), "server")
	if f.source != "" {
		title += "  (" + oneLine(f.source) + ")"
	}
	if f.hint != "" {
		title += "  " + f.hint
	}
	lines = append(lines, title)
	if f.err != nil {
		lines = append(lines, "error: "+oneLine(f.err.Error()))
	} else {
		lines = append(lines, "")
	}
	var b []byte
	if wide {
		b = cols(b[:0], aw, "address", "#Get", "#Set", "#Del")
		b = cols2(b, "Get/s", "Set/s", "Del/s", "items", "time", "clock", "status")
		lines = append(lines, string(b))
	} else {
		lines = append(lines, string(cols(b[:0], aw, "address", "#Get", "#Set", "#Del", "items")))
		lines = append(lines, string(cols2(pad(b[:0], 1), "Get/s", "Set/s", "Del/s", "", "time", "clock", "status")))
	}
	for i := range f.rows {
		r := &f.rows[i]
		addr := oneLine(r.addr)
		if r.err != nil {
			b = append(pad(append(b[:0], addr...), aw-len(addr)), ' ')
			lines = append(lines, string(append(b, oneLine(r.err.Error())...)))
			continue
		}
		s := &r.cur
		get, set, del, items := fit(s.get, 10), fit(s.set, 10), fit(s.del, 10), fit(s.items, 10)
		gr, sr, dr := "-", "-", "-"
		if r.rated {
			gr, sr, dr = rate(r.rates[0]), rate(r.rates[1]), rate(r.rates[2])
		}
		tm, ctr := "-", "-"
		if s.clock != 0 {
			tm = time.Unix(int64(s.clock>>32), 0).In(time.Local).Format(timeLayout)
			ctr = fit(s.clock&0xffffffff, 6)
		}
		if wide {
			b = cols(b[:0], aw, addr, get, set, del)
			b = cols2(b, gr, sr, dr, items, tm, ctr, oneLine(s.repl))
			lines = append(lines, string(b))
		} else {
			lines = append(lines, string(cols(b[:0], aw, addr, get, set, del, items)))
			lines = append(lines, string(cols2(pad(b[:0], 1), gr, sr, dr, "", tm, ctr, oneLine(s.repl))))
		}
	}
	for i, l := range lines {
		lines[i] = cut(strings.TrimRight(l, " "), width)
	}
	return lines
}

// cols appends the address padded to aw, then each of nums right-aligned
// in 10 columns after a space.
func cols(b []byte, aw int, addr string, nums ...string) []byte {
	b = pad(append(b, addr...), aw-len(addr))
	for _, n := range nums {
		b = pad(append(b, ' '), 10-len(n))
		b = append(b, n...)
	}
	return b
}

// cols2 appends the rates (8 columns each), items (10, omitted when empty
// in the two-line layout), time, clock counter (6) and status.
func cols2(b []byte, gr, sr, dr, items, tm, ctr, status string) []byte {
	for _, s := range []string{gr, sr, dr} {
		b = pad(append(b, ' '), 8-len(s))
		b = append(b, s...)
	}
	if items != "" {
		b = pad(append(b, ' '), 10-len(items))
		b = append(b, items...)
	}
	b = append(append(b, "  "...), tm...)
	b = pad(b, len(timeLayout)-len(tm))
	b = pad(append(b, ' '), 6-len(ctr))
	b = append(b, ctr...)
	return append(append(b, "  "...), status...)
}

func pad(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// fit formats v in decimal, or, when that is wider than w, in thousands
// (k), millions (M), ... with one decimal: 123456789012 in 10 columns is
// "123.5G".
func fit(v uint64, w int) string {
	s := strconv.FormatUint(v, 10)
	if len(s) <= w {
		return s
	}
	return scaled(float64(v), w)
}

// rate formats a per-second rate with one decimal in 8 columns.
func rate(v float64) string {
	if s := strconv.FormatFloat(v, 'f', 1, 64); len(s) <= 8 {
		return s
	}
	return scaled(v, 8)
}

// scaled writes v with the smallest SI suffix that fits in w columns.
func scaled(v float64, w int) string {
	var s string
	for _, unit := range "kMGTPE" {
		v /= 1000
		if s = strconv.FormatFloat(v, 'f', 1, 64) + string(unit); len(s) <= w {
			break
		}
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// oneLine replaces control characters (newlines, escapes) so that an error
// text cannot break the screen.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// cut shortens s to at most width runes.
func cut(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	n := 0
	for i := range s {
		if n == width {
			return s[:i]
		}
		n++
	}
	return s
}
