// Command kumotop shows a live table of kumo-servers, like top:
//
//	kumotop server-address[:port=19800] ...
//	kumotop -m manager-address[:port=19700]
//
// With -m it asks the manager for its node list (GetNodesInfo) on every
// refresh and watches every attached server, active or not. Each row shows
// the server's address, its get/set/delete counters and their rates per
// second since the previous sample, its record number (tombstones
// included), its clock (the seconds half of its ClockTime as local time,
// then the counter half) and its replace state as kumostat replstat names
// it (inactive, Deleting, Copying, WAIT, ready; ? when unknown). A server
// that cannot be sampled shows the error instead.
//
// On a terminal the table fills the screen (plain ANSI escapes, alternate
// screen), is redrawn twice a second and adapts to the terminal width: one
// line per server from 130 columns on, two lines below. q (or Ctrl-C) quits
// and the terminal is restored, also on SIGINT and SIGTERM.
//
// When stdout is not a terminal, frames are printed one after the other,
// separated by a blank line, at the width given by -w (or $COLUMNS, or 80).
// -n N stops after N frames; the exit status is then 1 if the last frame
// shows an error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"kumofs/internal/cli"
	"kumofs/ring"
)

// Default ports of addresses given without one.
const (
	ServerDefaultPort  = 19800
	ManagerDefaultPort = 19700
)

// Seams for tests: the clock frames are stamped with (rates are computed
// from these stamps) and the deadline of one server's sample.
var (
	now           = time.Now
	sampleTimeout = time.Second
)

var synopsis = fmt.Sprintf(`Usage: kumotop server-address[:port=%d] ...
       kumotop -m manager-address[:port=%d]
Keys: q quits.`, ServerDefaultPort, ManagerDefaultPort)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := cli.New("kumotop", synopsis)
	fs.AllowArgs()
	fs.Stdout, fs.Stderr = stdout, stderr
	code := -1
	fs.ExitFunc = func(c int) { code = c }
	var (
		manager  string
		frames   int
		width    int
		interval time.Duration
	)
	fs.Address(&manager, "-m", "--manager", "", "watch every attached server of this manager",
		func(s string) error { _, err := ring.ParseAddr(s, ManagerDefaultPort); return err })
	fs.Int(&frames, "-n", "--frames", 0, "show this many frames, then exit (0: until q)")
	fs.Int(&width, "-w", "--width", 0, "screen width in columns (0: the terminal's, $COLUMNS or 80)")
	fs.Seconds(&interval, "-i", "--interval", 500*time.Millisecond, "refresh interval")
	usageError := func(err error) int {
		fs.Exit(err)
		return code
	}
	if fs.Exit(fs.Parse(args)); code >= 0 {
		return code
	}
	args = fs.Args()
	switch {
	case frames < 0:
		return usageError(errors.New("-n must not be negative"))
	case width < 0:
		return usageError(errors.New("-w must not be negative"))
	case interval <= 0:
		return usageError(errors.New("-i must be positive"))
	case manager == "" && len(args) == 0:
		return usageError(errors.New("too few arguments"))
	case manager != "" && len(args) > 0:
		return usageError(errors.New("unexpected argument: " + args[0]))
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return usageError(errors.New("options go before the addresses: " + a))
		}
	}
	addrs := make([]ring.Addr, len(args))
	for i, a := range args {
		var err error
		if addrs[i], err = ring.ParseAddr(a, ServerDefaultPort); err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
	}
	var w *watcher
	if manager != "" {
		mgr, err := ring.ParseAddr(manager, ManagerDefaultPort)
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		w = newWatcher(&mgr, nil, sampleTimeout)
	} else {
		w = newWatcher(nil, addrs, sampleTimeout)
	}
	defer w.close()

	scr := &screen{w: stdout, width: width}
	if f, ok := stdout.(*os.File); ok && isTerminal(f) {
		scr.tty = f
	}
	quit, keys, stop := watchQuit(stdin, scr.tty != nil)
	defer stop()
	if scr.tty != nil {
		scr.enter()
		defer scr.leave()
	}

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last *frame
	for i := 0; frames == 0 || i < frames; i++ {
		if i > 0 {
			select {
			case <-ticker.C:
			case <-quit:
				return 0
			}
		}
		last = w.round(now())
		if keys {
			last.hint = "q: quit"
		}
		if err := scr.show(last); err != nil {
			scr.leave()
			stop()
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		select {
		case <-quit:
			return 0
		default:
		}
	}
	// The frame cuts errors at the screen's width: the last frame's are
	// repeated whole, one line each, as every kumo binary reports errors.
	code = 0
	if last.err != nil {
		fmt.Fprintln(stderr, "error:", last.err)
		code = 1
	}
	for _, r := range last.rows {
		if r.err != nil {
			fmt.Fprintf(stderr, "error: %s: %v\n", r.addr, r.err)
			code = 1
		}
	}
	return code
}

// watchQuit returns a channel closed when the user asks to quit: q or Q
// (or Ctrl-C read as a byte) on a terminal stdin when keys is set (reading
// then says so), SIGINT or SIGTERM always. stop ends the watching goroutines, waits for them
// and restores the terminal mode; it may be called more than once.
//
// Without raw mode (not Linux) q must be followed by Enter, and the key
// reader, blocked in a read, is abandoned at stop (the process exits next).
func watchQuit(stdin io.Reader, keys bool) (quit <-chan struct{}, reading bool, stop func()) {
	q := make(chan struct{})
	var once sync.Once
	fire := func() { once.Do(func() { close(q) }) }
	done := make(chan struct{})
	var wg sync.WaitGroup

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	wg.Go(func() {
		select {
		case <-sigc:
			fire()
		case <-done:
		}
	})

	restore := func() {}
	if f, ok := stdin.(*os.File); ok && keys && isTerminal(f) {
		polls := false
		if r, err := makeRaw(f); err == nil {
			restore, polls = r, rawPolls
		}
		reading = true
		reader := func() { readKeys(f, polls, fire, done) }
		if polls {
			wg.Go(reader)
		} else {
			go reader()
		}
	}
	var stopOnce sync.Once
	return q, reading, func() {
		stopOnce.Do(func() {
			signal.Stop(sigc)
			close(done)
			wg.Wait()
			restore()
		})
	}
}

// readKeys reads r until q, Q or Ctrl-C (then it calls quit), the end of
// input or an error, or done is closed. With polls a read that returns
// nothing (io.EOF) is a timeout of the terminal, not the end.
func readKeys(r io.Reader, polls bool, quit func(), done <-chan struct{}) {
	var buf [64]byte
	for {
		n, err := r.Read(buf[:])
		for _, c := range buf[:n] {
			if c == 'q' || c == 'Q' || c == 3 {
				quit()
				return
			}
		}
		select {
		case <-done:
			return
		default:
		}
		if err != nil && !(polls && err == io.EOF) {
			return
		}
	}
}

// screen writes frames: full-screen with ANSI escapes on a terminal,
// plain frames separated by blank lines otherwise.
type screen struct {
	w      io.Writer
	tty    *os.File // the terminal, nil for plain output
	width  int      // fixed width (-w), 0 to ask the terminal
	shown  int      // frames written
	buf    []byte
	inside bool // the alternate screen is on
}

// Escapes: alternate screen on/off, cursor hidden/shown, cursor home,
// erase to end of line, erase to end of screen.
const (
	escEnter = "\x1b[?1049h\x1b[?25l"
	escLeave = "\x1b[?25h\x1b[?1049l"
	escHome  = "\x1b[H"
	escEOL   = "\x1b[K"
	escEOS   = "\x1b[J"
)

func (s *screen) enter() {
	io.WriteString(s.w, escEnter)
	s.inside = true
}

func (s *screen) leave() {
	if s.inside {
		io.WriteString(s.w, escLeave)
		s.inside = false
	}
}

// size returns the columns and rows to draw in (rows 0: no limit).
func (s *screen) size() (cols, rows int) {
	if s.tty != nil {
		if c, r, ok := termSize(s.tty); ok {
			cols, rows = c, r
		}
	}
	if cols == 0 {
		cols, _ = strconv.Atoi(os.Getenv("COLUMNS"))
	}
	if s.width > 0 {
		cols = s.width
	}
	if cols <= 0 {
		cols = 80
	}
	return cols, rows
}

// show writes one frame.
func (s *screen) show(f *frame) error {
	cols, rows := s.size()
	lines := render(f, cols)
	b := s.buf[:0]
	if s.tty != nil {
		if rows > 0 && len(lines) > rows {
			lines = lines[:rows]
		}
		b = append(b, escHome...)
		for i, l := range lines {
			if i > 0 {
				b = append(b, "\r\n"...)
			}
			b = append(append(b, l...), escEOL...)
		}
		b = append(b, escEOS...)
	} else {
		if s.shown > 0 {
			b = append(b, '\n')
		}
		b = append(b, strings.Join(lines, "\n")...)
		b = append(b, '\n')
	}
	s.buf = b
	s.shown++
	_, err := s.w.Write(b)
	return err
}
