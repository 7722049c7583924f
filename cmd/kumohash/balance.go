package main

import (
	"bufio"
	"errors"
	"strconv"
	"strings"

	"kumofs/internal/cli"
	"kumofs/ring"
)

// maxGenerated bounds -servers: 10.0.0.1 onwards, 254 addresses per /24.
const maxGenerated = 1024

// options are kumohash's options. They may be given before the command and,
// for balance, after it; set remembers which were given in either place.
type options struct {
	mgr     string
	servers []int // -servers: generate this many servers (a list: balance table)
	vnodes  []int // -vnodes: virtual nodes per server (a list: balance table)
	seen    map[string]bool
}

func (o *options) register(fs *cli.FlagSet) {
	fs.Func("-m", "--manager", "<string>", "", "ask this manager for its hash space", func(s string) error {
		o.mark("-m")
		o.mgr = s
		return nil
	})
	fs.Func("-servers", "--servers", "<N[,N...]>", "",
		"generate N servers 10.0.0.1..N:19800",
		func(s string) error {
			l, err := intList(s, 1, maxGenerated)
			o.mark("-servers")
			o.servers = l
			return err
		})
	fs.Func("-vnodes", "--virtual-nodes", "<N[,N...]>", "128",
		"virtual nodes per server (with -m: what if)",
		func(s string) error {
			l, err := intList(s, ring.MinVirtualNodes, ring.MaxVirtualNodes)
			o.mark("-vnodes")
			o.vnodes = l
			return err
		})
}

func (o *options) mark(name string) {
	if o.seen == nil {
		o.seen = make(map[string]bool)
	}
	o.seen[name] = true
}

// set reports whether the option (by its short name) was given.
func (o *options) set(name string) bool { return o.seen[name] }

// vnodesOr returns the -vnodes list, or {def} if it was not given.
func (o *options) vnodesOr(def int) []int {
	if len(o.vnodes) == 0 {
		return []int{def}
	}
	return o.vnodes
}

var errRange = errors.New("out of range")

// intList parses "N[,N...]", each N in lo..hi.
func intList(s string, lo, hi int) ([]int, error) {
	var l []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, errors.New("not a number: " + f)
		}
		if n < lo || n > hi {
			return nil, errors.New(f + " is out of range " + strconv.Itoa(lo) + ".." + strconv.Itoa(hi))
		}
		l = append(l, n)
	}
	return l, nil
}

// generatedNodes returns n active servers as a deployment would have them:
// distinct IPv4 addresses 10.0.0.1, 10.0.0.2, ... (254 per /24, then
// 10.0.1.1, ...), all on port 19800, attached in that order.
func generatedNodes(n int) []ring.Node {
	nodes := make([]ring.Node, n)
	for i := range nodes {
		ip := [4]byte{10, 0, byte(i / 254), byte(i%254 + 1)}
		nodes[i] = ring.Node{Addr: ring.AddrFrom4(ip, serverDefaultPort), Active: true}
	}
	return nodes
}

// writeBalance prints each server's share of the key space, as coordinator
// (first owner) and as any owner, and the busiest/mean and least/mean ratios:
//
//	servers 3, virtual nodes per server 128, owners per key 3
//	server             coordinator      owner
//	127.0.0.1:19803        33.981%   100.000%
//	...
//	busiest/mean             1.019      1.000
//	least/mean               0.978      1.000
//
// Fault servers are marked "fault"; their share is where they are placed.
func writeBalance(w *bufio.Writer, hs *ring.HashSpace) {
	shares := hs.Shares()
	var line []byte
	line = append(line, "servers "...)
	line = strconv.AppendInt(line, int64(hs.NumNodes()), 10)
	line = append(line, ", virtual nodes per server "...)
	line = strconv.AppendInt(line, int64(hs.VirtualNodesPerServer()), 10)
	line = append(line, ", owners per key "...)
	line = strconv.AppendInt(line, int64(min(ring.Replicas, hs.NumNodes())), 10)
	w.Write(append(line, '\n'))
	width := len("busiest/mean")
	for _, s := range shares {
		width = max(width, len(s.Node.Addr.String()))
	}
	line = pad(append(line[:0], "server"...), width)
	w.Write(append(line, "  coordinator      owner\n"...))
	for _, s := range shares {
		line = s.Node.Addr.AppendText(line[:0])
		line = pad(line, width)
		line = appendCol(line, 13, 100*s.Coordinator, 3, '%')
		line = appendCol(line, 11, 100*s.Owner, 3, '%')
		if !s.Node.Active {
			line = append(line, "  fault"...)
		}
		w.Write(append(line, '\n'))
	}
	sp := ring.SpreadOf(shares)
	for _, r := range []struct {
		name        string
		coord, owns float64
	}{
		{"busiest/mean", sp.CoordinatorMax, sp.OwnerMax},
		{"least/mean", sp.CoordinatorMin, sp.OwnerMin},
	} {
		line = pad(append(line[:0], r.name...), width)
		line = appendCol(line, 12, r.coord, 3, 0)
		line = appendCol(line, 11, r.owns, 3, 0)
		w.Write(append(line, '\n'))
	}
}

// writeBalanceTable prints, as a Markdown table, the spread of every
// combination of generated servers and virtual-node counts.
func writeBalanceTable(w *bufio.Writer, servers, vnodes []int) {
	w.WriteString("| servers | virtual nodes | coordinator busiest/mean | coordinator least/mean | owner busiest/mean | owner least/mean |\n")
	w.WriteString("|--------:|--------------:|-------------------------:|-----------------------:|-------------------:|-----------------:|\n")
	var line []byte
	for _, v := range vnodes {
		for _, n := range servers {
			sp := ring.SpreadOf(ring.NewWithVirtualNodes(generatedNodes(n), 0, v).Shares())
			line = append(line[:0], '|')
			line = appendCol(line, 8, float64(n), 0, 0)
			line = append(line, " |"...)
			line = appendCol(line, 14, float64(v), 0, 0)
			for i, x := range []float64{sp.CoordinatorMax, sp.CoordinatorMin, sp.OwnerMax, sp.OwnerMin} {
				line = append(line, " |"...)
				line = appendCol(line, []int{25, 23, 19, 17}[i], x, 3, 0)
			}
			w.Write(append(line, " |\n"...))
		}
	}
}

// pad appends spaces to b up to length n.
func pad(b []byte, n int) []byte {
	for len(b) < n {
		b = append(b, ' ')
	}
	return b
}

// appendCol appends x with prec decimals and the suffix byte (if not 0),
// right-aligned in a column of width bytes.
func appendCol(b []byte, width int, x float64, prec int, suffix byte) []byte {
	var num [32]byte
	f := strconv.AppendFloat(num[:0], x, 'f', prec, 64)
	if suffix != 0 {
		f = append(f, suffix)
	}
	for i := len(f); i < width; i++ {
		b = append(b, ' ')
	}
	return append(b, f...)
}
