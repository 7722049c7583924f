// Package logging writes kumo's log: one line per event,
//
//	2026-11-25 19:20:00.123 INFO  manager: new node 127.0.0.1:19801
//
// that is local time with milliseconds, the level padded to 5 columns, the
// component and the message. Lines go to stderr or to a file opened in
// append mode; Reopen reopens the file (the daemons call it on SIGHUP, for
// logrotate). A Logger is safe for concurrent use; lines are never
// interleaved.
package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Level is the severity of a line.
type Level int32

// Levels, lowest first. A Logger writes lines at or above its level.
const (
	Debug Level = iota
	Info
	Warn
	Error
)

var levelNames = [...]string{"DEBUG", "INFO ", "WARN ", "ERROR"}

// String returns the level's name ("DEBUG", "INFO", "WARN", "ERROR").
func (l Level) String() string {
	if l < Debug || l > Error {
		return fmt.Sprintf("Level(%d)", int32(l))
	}
	return strings.TrimSpace(levelNames[l])
}

// ErrNoFile is returned by Reopen for a Logger that does not write to a file.
var ErrNoFile = errors.New("logging: not logging to a file")

// sink is the output shared by a Logger and its components.
type sink struct {
	mu   sync.Mutex // protects w, file; held while writing one line
	w    io.Writer
	file *os.File // non-nil when logging to path
	path string

	level atomic.Int32
	now   func() time.Time
}

// Logger writes log lines for one component. Loggers made by With share
// the output and the level of their parent.
type Logger struct {
	s    *sink
	comp string
}

// New returns a Logger writing to w (os.Stderr when nil) at level.
func New(w io.Writer, level Level) *Logger {
	if w == nil {
		w = os.Stderr
	}
	s := &sink{w: w, now: time.Now}
	s.level.Store(int32(level))
	return &Logger{s: s}
}

// Open returns a Logger appending to the file at path (created with mode
// 0644 if missing).
func Open(path string, level Level) (*Logger, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	l := New(f, level)
	l.s.file, l.s.path = f, path
	return l, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	return f, nil
}

// Setup builds the Logger the daemons' -o and -v flags ask for: path ""
// means stderr, "-" stdout, anything else a file in append mode; verbose
// enables DEBUG lines (otherwise INFO and up).
func Setup(path string, verbose bool) (*Logger, error) {
	level := Info
	if verbose {
		level = Debug
	}
	switch path {
	case "":
		return New(os.Stderr, level), nil
	case "-":
		return New(os.Stdout, level), nil
	}
	return Open(path, level)
}

// SetClock replaces the time source (tests). Call it before logging.
func (l *Logger) SetClock(now func() time.Time) { l.s.now = now }

// With returns a Logger for component that shares l's output and level.
func (l *Logger) With(component string) *Logger { return &Logger{s: l.s, comp: component} }

// SetLevel changes the level of l and every Logger sharing its output.
func (l *Logger) SetLevel(level Level) { l.s.level.Store(int32(level)) }

// Level returns the current level.
func (l *Logger) Level() Level { return Level(l.s.level.Load()) }

// Enabled reports whether lines at level are written.
func (l *Logger) Enabled(level Level) bool { return level >= l.Level() }

// Reopen closes and reopens the log file at its path, so that a file renamed
// by logrotate is replaced by a new one. It returns ErrNoFile when l does not
// log to a file. If the new file cannot be opened, logging continues to the
// old one and the error is returned.
func (l *Logger) Reopen() error {
	s := l.s
	if s.path == "" {
		return ErrNoFile
	}
	f, err := openAppend(s.path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.file
	s.file, s.w = f, f
	s.mu.Unlock()
	return old.Close()
}

// Close closes the log file, if any. Lines logged afterwards are dropped.
func (l *Logger) Close() error {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file, s.w = nil, io.Discard
	return err
}

// Log writes one line at level. Newlines inside the message are escaped so
// that each event stays on one line.
func (l *Logger) Log(level Level, format string, args ...any) {
	if !l.Enabled(level) {
		return
	}
	if level < Debug || level > Error {
		level = Error
	}
	s := l.s
	b := make([]byte, 0, 128)
	b = s.now().AppendFormat(b, "2006-01-02 15:04:05.000")
	b = append(b, ' ')
	b = append(b, levelNames[level]...)
	b = append(b, ' ')
	if l.comp != "" {
		b = append(b, l.comp...)
		b = append(b, ": "...)
	}
	start := len(b)
	b = fmt.Appendf(b, format, args...)
	for len(b) > start && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	b = escapeNewlines(b, start)
	b = append(b, '\n')
	s.mu.Lock()
	s.w.Write(b)
	s.mu.Unlock()
}

// escapeNewlines replaces each '\n' or '\r' after b[start] with "\n" / "\r".
func escapeNewlines(b []byte, start int) []byte {
	n := 0
	for _, c := range b[start:] {
		if c == '\n' || c == '\r' {
			n++
		}
	}
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	out = append(out, b[:start]...)
	for _, c := range b[start:] {
		switch c {
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		default:
			out = append(out, c)
		}
	}
	return out
}

// Debugf logs at DEBUG (only with -v).
func (l *Logger) Debugf(format string, args ...any) { l.Log(Debug, format, args...) }

// Infof logs at INFO.
func (l *Logger) Infof(format string, args ...any) { l.Log(Info, format, args...) }

// Warnf logs at WARN.
func (l *Logger) Warnf(format string, args ...any) { l.Log(Warn, format, args...) }

// Errorf logs at ERROR.
func (l *Logger) Errorf(format string, args ...any) { l.Log(Error, format, args...) }

// Logf logs at INFO. The method value l.Logf (like l.Warnf or l.Debugf) is
// the adapter for packages that take a logger func
// (func(format string, args ...any)).
func (l *Logger) Logf(format string, args ...any) { l.Log(Info, format, args...) }

// Printf logs at INFO, so a Logger can stand in for a *log.Logger.
func (l *Logger) Printf(format string, args ...any) { l.Log(Info, format, args...) }

// Func returns a printf-style function logging at level, for packages that
// take a logger func (func(format string, args ...any)).
func (l *Logger) Func(level Level) func(format string, args ...any) {
	return func(format string, args ...any) { l.Log(level, format, args...) }
}

// Discard is a Logger that writes nothing.
var Discard = New(io.Discard, Error+1)
