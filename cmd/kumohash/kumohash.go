package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"kumofs/internal/cli"
	"kumofs/ring"
)

const (
	serverDefaultPort  = 19800
	managerDefaultPort = 19700

	// managerTimeout bounds the whole exchange with the manager.
	managerTimeout = 10 * time.Second
)

const usage = `usage: kumohash SERVER[:port=19800] ... -- command [KEY...]
       kumohash -m MANAGER[:port=19700] command [KEY...]
command:
   hash    KEY...             calculate the hash of keys
   assign  KEY...             calculate the servers that own keys
   dump                       dump the hash space`

// fetchFunc returns the manager's write hash space.
type fetchFunc func(ctx context.Context, mgr string) (*ring.HashSpace, error)

// run is kumohash without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer, fetch fetchFunc) int {
	code := 0
	fs := cli.New("kumohash", usage)
	fs.Stdout, fs.Stderr = stdout, stderr
	fs.ExitFunc = func(c int) { code = c }
	fs.AllowArgs()
	fs.KeepDash = true
	var mgr string
	fs.String(&mgr, "-m", "--manager", "", "ask this manager for its hash space")

	if err := fs.Parse(args); err != nil {
		fs.Exit(err)
		return code
	}
	rest := fs.Args()
	var servers []string
	if !fs.IsSet("-m") {
		i := 0
		for i < len(rest) && rest[i] != "--" {
			i++
		}
		if i == len(rest) {
			fs.Fail("missing -- and command after the server list")
			return code
		}
		servers, rest = rest[:i], rest[i+1:]
	}
	if len(rest) == 0 {
		fs.Fail("missing command")
		return code
	}
	cmd, keys := rest[0], rest[1:]
	switch cmd {
	case "hash", "assign":
		if len(keys) == 0 {
			fs.Fail("%s: missing KEY", cmd)
			return code
		}
	case "dump":
		if len(keys) != 0 {
			fs.Fail("dump takes no KEY: %s", keys[0])
			return code
		}
	default:
		fs.Fail("unknown command %s", cmd)
		return code
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if cmd == "hash" {
		for _, k := range keys {
			writeHash(w, []byte(k))
		}
		return 0
	}

	var hs *ring.HashSpace
	if fs.IsSet("-m") {
		ctx, cancel := context.WithTimeout(context.Background(), managerTimeout)
		defer cancel()
		var err error
		if hs, err = fetch(ctx, mgr); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
	} else {
		nodes := make([]ring.Node, 0, len(servers))
		for _, s := range servers {
			a, err := ring.ParseAddr(s, serverDefaultPort)
			if err != nil {
				fs.Exit(err)
				return code
			}
			nodes = append(nodes, ring.Node{Addr: a, Active: true})
		}
		hs = ring.New(nodes, 0)
	}

	var line []byte
	switch cmd {
	case "dump":
		for _, v := range hs.VirtualNodes() {
			line = appendHex16(line[:0], v.Hash)
			line = append(line, ' ', ' ')
			line = v.Node.Addr.AppendText(line)
			line = append(line, '\n')
			w.Write(line)
		}
	case "assign":
		for _, k := range keys {
			writeHash(w, []byte(k))
			o := hs.Lookup([]byte(k))
			for i := 0; i < o.Len(); i++ {
				line = append(line[:0], ' ', ' ')
				line = strconv.AppendInt(line, int64(i), 10)
				line = append(line, ':', ' ')
				line = o.At(i).Addr.AppendText(line)
				line = append(line, '\n')
				w.Write(line)
			}
		}
	}
	return 0
}

// writeHash prints "%016x  key".
func writeHash(w *bufio.Writer, key []byte) {
	var b [18]byte
	w.Write(appendHex16(b[:0], ring.Hash(key)))
	w.WriteString("  ")
	w.Write(key)
	w.WriteByte('\n')
}

func appendHex16(b []byte, h uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[h>>uint(shift)&0xf])
	}
	return b
}
