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
       kumohash -servers N command [KEY...]
command:
   hash    KEY...             calculate the hash of keys
   assign  KEY...             calculate the servers that own keys
   dump                       dump the hash space
   balance [options]          each server's share of the key space; with
                              lists (-servers 3,6,12 -vnodes 128,1024) or
                              -sets, a table of busiest/mean ratios`

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
	var o options
	o.register(fs)

	if err := fs.Parse(args); err != nil {
		fs.Exit(err)
		return code
	}
	rest := fs.Args()
	// balance takes options after the command too:
	// "kumohash balance -servers 24 -vnodes 1024".
	tailOptions := func(tail []string) bool {
		ts := cli.New("kumohash", usage)
		o.register(ts)
		if err := ts.Parse(tail); err != nil {
			fs.Exit(err)
			return false
		}
		return true
	}
	if len(rest) > 0 && rest[0] == "balance" {
		if !tailOptions(rest[1:]) {
			return code
		}
		rest = rest[:1]
		if !o.set("-m") && !o.set("-servers") {
			fs.Fail("balance: list the servers (SERVER ... -- balance), or give -servers N or -m MANAGER")
			return code
		}
	}
	if o.set("-m") && o.set("-servers") {
		fs.Fail("-m and -servers exclude each other")
		return code
	}
	var servers []string
	serverList := !o.set("-m") && !o.set("-servers")
	if serverList {
		i := 0
		for i < len(rest) && rest[i] != "--" {
			i++
		}
		if i == len(rest) {
			fs.Fail("missing -- and command after the server list")
			return code
		}
		servers, rest = rest[:i], rest[i+1:]
		if len(rest) > 1 && rest[0] == "balance" {
			if !tailOptions(rest[1:]) {
				return code
			}
			rest = rest[:1]
			if o.set("-m") || o.set("-servers") {
				fs.Fail("-m and -servers do not go with a server list")
				return code
			}
		}
	}
	if !serverList && len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:] // "kumohash -servers 3 -- balance"
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
	case "dump", "balance":
		if len(keys) != 0 {
			fs.Fail("%s takes no KEY: %s", cmd, keys[0])
			return code
		}
	default:
		fs.Fail("unknown command %s", cmd)
		return code
	}
	if cmd != "balance" && o.table() {
		fs.Fail("%s: -servers and -vnodes take one number, and -sets is for balance", cmd)
		return code
	}
	if o.table() {
		if !o.set("-servers") {
			fs.Fail("balance: a table (lists, -sets) needs -servers")
			return code
		}
		w := bufio.NewWriter(stdout)
		defer w.Flush()
		writeBalanceTable(w, o.servers, o.vnodesOr(ring.DefaultVirtualNodes), max(o.sets, 1))
		return 0
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
	switch {
	case o.set("-m"):
		ctx, cancel := context.WithTimeout(context.Background(), managerTimeout)
		defer cancel()
		var err error
		if hs, err = fetch(ctx, o.mgr); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
		if o.set("-vnodes") {
			// What if the manager used this count?
			hs, _ = hs.WithVirtualNodes(o.vnodes[0], hs.Clock())
		}
	case o.set("-servers"):
		hs = ring.NewWithVirtualNodes(generatedNodes(0, o.servers[0]), 0, o.vnodesOr(ring.DefaultVirtualNodes)[0])
	default:
		nodes := make([]ring.Node, 0, len(servers))
		for _, s := range servers {
			a, err := ring.ParseAddr(s, serverDefaultPort)
			if err != nil {
				fs.Exit(err)
				return code
			}
			nodes = append(nodes, ring.Node{Addr: a, Active: true})
		}
		hs = ring.NewWithVirtualNodes(nodes, 0, o.vnodesOr(ring.DefaultVirtualNodes)[0])
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
	case "balance":
		writeBalance(w, hs)
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
