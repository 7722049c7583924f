package localcluster

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"time"
)

// ProbeKey is the key Start and Probe write, read and delete through the
// gateway.
const ProbeKey = "kumo-local-probe"

// probe does one memcached text set, get and delete of ProbeKey at addr:
// the cluster it leaves holds no key the user did not write (a tombstone,
// which no client sees, until the garbage time).
func probe(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)
	val := fmt.Sprintf("%d", time.Now().UnixNano())
	if _, err := fmt.Fprintf(conn, "set %s 0 0 %d\r\n%s\r\n", ProbeKey, len(val), val); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "STORED\r\n" {
		return fmt.Errorf("set answered %q", line)
	}
	if _, err := fmt.Fprintf(conn, "get %s\r\n", ProbeKey); err != nil {
		return err
	}
	want := fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", ProbeKey, len(val), val)
	got := make([]byte, len(want))
	n, err := readFull(r, got)
	if !bytes.Equal(got[:n], []byte(want)) {
		return fmt.Errorf("get answered %q (%v)", got[:n], err)
	}
	if _, err := fmt.Fprintf(conn, "delete %s\r\n", ProbeKey); err != nil {
		return err
	}
	if line, err = r.ReadString('\n'); err != nil {
		return err
	}
	if line != "DELETED\r\n" {
		return fmt.Errorf("delete answered %q", line)
	}
	return nil
}

// readFull reads until b is full or an error; it stops early at a line that
// cannot be the start of the wanted reply, so a short "END\r\n" or an error
// line does not wait for the deadline.
func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
		if bytes.HasPrefix(b[:n], []byte("END\r\n")) || bytes.HasSuffix(b[:n], []byte("ERROR\r\n")) {
			return n, nil
		}
	}
	return n, nil
}
