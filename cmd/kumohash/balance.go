package main

import (
	"bufio"
	"errors"
	"slices"
	"strconv"
	"strings"

	"kumofs/internal/cli"
	"kumofs/ring"
)

// maxGenerated bounds -servers: 10.k.0.1 onwards, 254 addresses per /24.
const maxGenerated = 1024

// maxSets bounds -sets: the second byte of 10.k.x.y.
const maxSets = 256

// options are kumohash's options. They may be given before the command and,
// for balance, after it; set remembers which were given in either place.
type options struct {
	mgr     string
	servers []int // -servers: generate this many servers (a list: balance table)
	vnodes  []int // -vnodes: virtual nodes per server (a list: balance table)
	sets    int   // -sets: address sets of the balance table
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
	fs.Func("-sets", "--address-sets", "<K>", "1",
		"balance table over K address sets 10.k.0.1.. (k < K): median and worst",
		func(s string) error {
			l, err := intList(s, 1, maxSets)
			o.mark("-sets")
			if err == nil && len(l) != 1 {
				err = errors.New("one number, not a list")
			}
			if err == nil {
				o.sets = l[0]
			}
			return err
		})
}

// table reports whether balance prints the summary table.
func (o *options) table() bool { return len(o.servers) > 1 || len(o.vnodes) > 1 || o.sets > 1 }

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
// distinct IPv4 addresses 10.k.0.1, 10.k.0.2, ... (254 per /24, then
// 10.k.1.1, ...), all on port 19800, attached in that order. -servers uses
// address set k = 0.
func generatedNodes(k, n int) []ring.Node {
	nodes := make([]ring.Node, n)
	for i := range nodes {
		ip := [4]byte{10, byte(k), byte(i / 254), byte(i%254 + 1)}
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
// combination of generated servers and virtual-node counts. With more than
// one address set it shows, for each combination, the median and the worst
// busiest/mean over the sets.
func writeBalanceTable(w *bufio.Writer, servers, vnodes []int, sets int) {
	if sets > 1 {
		w.WriteString("| servers | virtual nodes | address sets | coordinator busiest/mean median | worst | owner busiest/mean median | worst |\n")
		w.WriteString("|--------:|--------------:|-------------:|-------------------------------:|------:|-------------------------:|------:|\n")
	} else {
		w.WriteString("| servers | virtual nodes | coordinator busiest/mean | coordinator least/mean | owner busiest/mean | owner least/mean |\n")
		w.WriteString("|--------:|--------------:|-------------------------:|-----------------------:|-------------------:|-----------------:|\n")
	}
	var line []byte
	for _, v := range vnodes {
		for _, n := range servers {
			line = append(line[:0], '|')
			line = appendCol(line, 8, float64(n), 0, 0)
			line = append(line, " |"...)
			line = appendCol(line, 14, float64(v), 0, 0)
			var cols []float64
			var widths []int
			if sets > 1 {
				line = append(line, " |"...)
				line = appendCol(line, 13, float64(sets), 0, 0)
				coord := make([]float64, sets)
				owner := make([]float64, sets)
				for k := range sets {
					sp := ring.SpreadOf(ring.NewWithVirtualNodes(generatedNodes(k, n), 0, v).Shares())
					coord[k], owner[k] = sp.CoordinatorMax, sp.OwnerMax
				}
				slices.Sort(coord)
				slices.Sort(owner)
				cols = []float64{coord[sets/2], coord[sets-1], owner[sets/2], owner[sets-1]}
				widths = []int{32, 6, 26, 6}
			} else {
				sp := ring.SpreadOf(ring.NewWithVirtualNodes(generatedNodes(0, n), 0, v).Shares())
				cols = []float64{sp.CoordinatorMax, sp.CoordinatorMin, sp.OwnerMax, sp.OwnerMin}
				widths = []int{25, 23, 19, 17}
			}
			for i, x := range cols {
				line = append(line, " |"...)
				line = appendCol(line, widths[i], x, 3, 0)
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
