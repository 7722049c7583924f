package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mc is a minimal memcached text-protocol client for tests: every method
// sends one command and returns the exact reply, so tests can assert bytes.
type mc struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *mc {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &mc{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *mc) send(s string) {
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *mc) line() string {
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return l
}

// cmd sends a command and returns its one-line reply.
func (c *mc) cmd(s string) string {
	c.send(s)
	return c.line()
}

func (c *mc) set(key, val string) string {
	return c.cmd(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(val), val))
}

// get returns the value (a plain get, which shows no cas unique), or
// ok=false on a miss.
func (c *mc) get(key string) (string, bool) {
	v, _, ok := c.read("get", key)
	return v, ok
}

// gets returns the value and its cas unique.
func (c *mc) gets(key string) (val string, cas uint64, ok bool) {
	return c.read("gets", key)
}

// read sends "get key" or "gets key" and returns the value and (gets)
// its cas unique.
func (c *mc) read(cmd, key string) (val string, cas uint64, ok bool) {
	c.send(cmd + " " + key + "\r\n")
	return c.reply(cmd, key)
}

// reply reads the reply to "get key" or "gets key", sent before.
func (c *mc) reply(cmd, key string) (val string, cas uint64, ok bool) {
	l := c.line()
	if l == "END\r\n" {
		return "", 0, false
	}
	f := strings.Fields(l)
	if want := map[string]int{"get": 4, "gets": 5}[cmd]; len(f) != want || f[0] != "VALUE" {
		c.t.Fatalf("%s %s: unexpected %q", cmd, key, l)
	}
	n, _ := strconv.Atoi(f[3])
	if cmd == "gets" {
		cas, _ = strconv.ParseUint(f[4], 10, 64)
	}
	buf := make([]byte, n+2)
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io_ReadFull(c.r, buf); err != nil {
		c.t.Fatalf("%s %s: %v", cmd, key, err)
	}
	if end := c.line(); end != "END\r\n" {
		c.t.Fatalf("%s %s: want END, got %q", cmd, key, end)
	}
	return string(buf[:n]), cas, true
}

func io_ReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// readAll reads replies until one equals end (inclusive), for multi-line replies.
func (c *mc) until(end string) string {
	var b bytes.Buffer
	for {
		l := c.line()
		b.WriteString(l)
		if l == end {
			return b.String()
		}
	}
}
