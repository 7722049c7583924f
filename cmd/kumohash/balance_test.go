package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"kumofs/ring"
)

// The commands that make the balance tables of docs/capacity.md.
var (
	tableArgs = []string{"balance", "-servers", "3,6,12,24,48", "-vnodes", "128,1024,2048"}
	setsArgs  = []string{"balance", "-servers", "24,48", "-vnodes", "128,1024,2048", "-sets", "20"}
)

func TestBalanceGolden(t *testing.T) {
	offline := func(tail ...string) []string { return append(append(append([]string{}, servers...), "--"), tail...) }
	for _, tc := range []struct {
		name   string
		args   []string
		golden string
	}{
		{"golden cluster", offline("balance"), "balance.golden"},
		{"generated", []string{"-servers", "24", "balance"}, "balance_24.golden"},
		{"options after", []string{"balance", "-servers", "24"}, "balance_24.golden"},
		{"dash", []string{"-servers", "24", "--", "balance"}, "balance_24.golden"},
		{"long names", []string{"balance", "--servers=24", "--virtual-nodes", "1024"}, "balance_24_1024.golden"},
		{"finer", []string{"-vnodes", "1024", "-servers", "24", "balance"}, "balance_24_1024.golden"},
		{"finer after", []string{"balance", "-servers", "24", "-vnodes", "1024"}, "balance_24_1024.golden"},
		{"list finer", append([]string{"-vnodes", "1024"}, offline("balance")...), "balance_1024.golden"},
		{"list finer after", offline("balance", "-vnodes", "1024"), "balance_1024.golden"},
		{"manager", []string{"-m", "127.0.0.1", "balance"}, "balance_manager.golden"},
		{"manager what if", []string{"-m", "127.0.0.1", "balance", "-vnodes", "1024"}, "balance_manager_1024.golden"},
		{"table", tableArgs, "balance_table.golden"},
		{"sets", []string{"-servers", "6,12", "-vnodes", "16", "-sets", "3", "balance"}, "balance_sets.golden"},
		{"sets single", []string{"balance", "-servers", "6", "--address-sets=3", "-vnodes", "16"}, "balance_sets_6.golden"},
		{"no servers", []string{"--", "balance"}, "balance_empty.golden"},
		{"dump finer", append([]string{"-vnodes", "2"}, offline("dump")...), "dump_2.golden"},
		{"assign generated", []string{"-servers", "48", "-vnodes", "1024", "assign", "a", "k1", "foo"}, "assign_48_1024.golden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			fetch := func(ctx context.Context, mgr string) (*ring.HashSpace, error) {
				return managerSpace(t), nil
			}
			if code := run(tc.args, &stdout, &stderr, fetch); code != 0 || stderr.Len() != 0 {
				t.Fatalf("%q: exit %d, stderr %q", tc.args, code, stderr.String())
			}
			golden(t, tc.golden, stdout.Bytes())
		})
	}
}

// TestBalanceFinerDump: with fewer virtual nodes the dump is the first points
// of each kumofs chain.
func TestBalanceFinerDump(t *testing.T) {
	var full, two bytes.Buffer
	run(append(append(servers[:3:3], "--"), "dump"), &full, &full, nil)
	run(append([]string{"-vnodes", "2"}, append(servers[:3:3], "--", "dump")...), &two, &two, nil)
	lines := strings.Split(strings.TrimSuffix(two.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		if !strings.Contains(full.String(), l+"\n") {
			t.Errorf("%q is not a kumofs point", l)
		}
	}
}

// TestBalanceDocs: the tables in docs/capacity.md are what the commands in
// it print today.
func TestBalanceDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/capacity.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{tableArgs, setsArgs} {
		if testing.Short() && len(args) > 6 {
			continue // 120 rings of up to 98304 points
		}
		var out bytes.Buffer
		run(args, &out, &out, nil)
		if !bytes.Contains(doc, out.Bytes()) {
			t.Errorf("docs/capacity.md does not hold the output of kumohash %s:\n%s", strings.Join(args, " "), out.String())
		}
		if !bytes.Contains(doc, []byte("kumohash "+strings.Join(args, " "))) {
			t.Errorf("docs/capacity.md does not show the command kumohash %s", strings.Join(args, " "))
		}
	}
}

// TestBalanceSets: the -sets table's median and worst are those of the
// address sets 10.k.0.1.. one by one.
func TestBalanceSets(t *testing.T) {
	var coord, owner []string
	for k := range 3 {
		sp := ring.SpreadOf(ring.NewWithVirtualNodes(generatedNodes(k, 6), 0, 16).Shares())
		coord = append(coord, strconv.FormatFloat(sp.CoordinatorMax, 'f', 3, 64))
		owner = append(owner, strconv.FormatFloat(sp.OwnerMax, 'f', 3, 64))
		if a := generatedNodes(k, 6)[5].Addr.String(); a != "10."+strconv.Itoa(k)+".0.6:19800" {
			t.Errorf("set %d: %s", k, a)
		}
	}
	slices.Sort(coord) // same width: string order is numeric order
	slices.Sort(owner)
	var out bytes.Buffer
	run([]string{"-servers", "6", "-vnodes", "16", "-sets", "3", "balance"}, &out, &out, nil)
	row := strings.Split(out.String(), "\n")[2]
	f := strings.Fields(strings.ReplaceAll(row, "|", " "))
	if want := []string{"6", "16", "3", coord[1], coord[2], owner[1], owner[2]}; !slices.Equal(f, want) {
		t.Errorf("row %q, want %q", f, want)
	}
}

func TestBalanceUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"balance"}, "balance: list the servers (SERVER ... -- balance), or give -servers N or -m MANAGER"},
		{[]string{"balance", "-vnodes", "1024"}, "balance: list the servers (SERVER ... -- balance), or give -servers N or -m MANAGER"},
		{[]string{"balance", "-servers", "3", "x"}, "unexpected argument: x"},
		{[]string{"-servers", "3", "balance", "x"}, "unexpected argument: x"},
		{[]string{"127.0.0.1", "--", "balance", "x"}, "unexpected argument: x"},
		{[]string{"127.0.0.1", "--", "balance", "-servers", "3"}, "-m and -servers do not go with a server list"},
		{[]string{"-servers", "3", "-m", "x", "balance"}, "-m and -servers exclude each other"},
		{[]string{"balance", "-servers", "3", "-m", "x"}, "-m and -servers exclude each other"},
		{[]string{"-servers", "3,4", "assign", "a"}, "assign: -servers and -vnodes take one number, and -sets is for balance"},
		{[]string{"-vnodes", "1,2", "-servers", "3", "dump"}, "dump: -servers and -vnodes take one number, and -sets is for balance"},
		{[]string{"-sets", "2", "-servers", "3", "dump"}, "dump: -servers and -vnodes take one number, and -sets is for balance"},
		{[]string{"-vnodes", "128,1024", "127.0.0.1", "--", "balance"}, "balance: a table (lists, -sets) needs -servers"},
		{[]string{"-vnodes", "128,1024", "-m", "x", "balance"}, "balance: a table (lists, -sets) needs -servers"},
		{[]string{"-sets", "2", "-m", "x", "balance"}, "balance: a table (lists, -sets) needs -servers"},
		{[]string{"balance", "-servers", "3", "-sets", "0"}, "argument error `-sets': 0 is out of range 1..256"},
		{[]string{"balance", "-servers", "3", "-sets", "257"}, "argument error `-sets': 257 is out of range 1..256"},
		{[]string{"balance", "-servers", "3", "-sets", "2,3"}, "argument error `-sets': one number, not a list"},
		{[]string{"balance", "-vnodes", "0", "-servers", "3"}, "argument error `-vnodes': 0 is out of range 1..4096"},
		{[]string{"balance", "-vnodes", "4097", "-servers", "3"}, "argument error `-vnodes': 4097 is out of range 1..4096"},
		{[]string{"balance", "-vnodes", "1,", "-servers", "3"}, "argument error `-vnodes': not a number: "},
		{[]string{"balance", "-servers", "x"}, "argument error `-servers': not a number: x"},
		{[]string{"balance", "-servers", "0"}, "argument error `-servers': 0 is out of range 1..1024"},
		{[]string{"balance", "-servers", "1025"}, "argument error `-servers': 1025 is out of range 1..1024"},
		{[]string{"-servers"}, "argument error `-servers': value is required"},
		{[]string{"-servers", "2"}, "missing command"},
		{[]string{"-servers", "2", "dump", "a"}, "dump takes no KEY: a"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr, nil)
		if code != 1 || stderr.String() != "error: "+tc.stderr+"\n" || !strings.HasPrefix(stdout.String(), "usage: kumohash") {
			t.Errorf("%q: exit %d stderr %q, want %q", tc.args, code, stderr.String(), tc.stderr)
		}
	}
	// -h after balance is help, as before it.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"balance", "-h"}, &stdout, &stderr, nil); code != 0 || stderr.Len() != 0 || !strings.HasPrefix(stdout.String(), "usage: kumohash") {
		t.Errorf("balance -h: exit %d stderr %q", code, stderr.String())
	}
}

// TestManagerFormFiner: a manager whose hash space has 1024 virtual nodes
// sends the count in its seed, and kumohash places keys with it.
func TestManagerFormFiner(t *testing.T) {
	hs, _ := managerSpace(t).WithVirtualNodes(1024, 5)
	addr := startManager(t, nodesInfo(hs), nil)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-m", addr, "balance"}, &stdout, &stderr, fetchFromManager); code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	golden(t, "balance_manager_1024.golden", stdout.Bytes())
}

func FuzzIntList(f *testing.F) {
	for _, s := range []string{"3,6,12,24,48", "1024", "", ",", "1,,2", "-1", "0x10", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := intList(s, 1, 4096)
		if err != nil {
			if l != nil {
				t.Fatalf("%q: list %v with error %v", s, l, err)
			}
			return
		}
		parts := strings.Split(s, ",")
		if len(l) != len(parts) {
			t.Fatalf("%q: %d numbers", s, len(l))
		}
		for i, n := range l {
			if n < 1 || n > 4096 || strconv.Itoa(n) != strings.TrimLeft(strings.TrimPrefix(parts[i], "+"), "0") {
				t.Fatalf("%q: %v", s, l)
			}
		}
	})
}
