package memcache_test

import (
	"strings"
	"testing"
)

const (
	noExp = "\xff\xff\xff\xff"
)

func setExtras(flags, exp uint32) string { return be32(flags) + be32(exp) }

func incrExtras(delta, initial uint64, exp uint32) string {
	return be64(delta) + be64(initial) + be32(exp)
}

// binaryCases: request packets → exact response packets of a fresh server
// (CAS uniques count from 1, clock fixed at t0, MaxItemSize 1024).
var binaryCases = []transcript{
	{"noop", binReq(0x0a, "", "", "", 7, 0), binRes(0x0a, 0, "", "", "", 7, 0)},
	{"version", binReq(0x0b, "", "", "", 1, 0), binRes(0x0b, 0, "", "", "1.6.18-kumo", 1, 0)},
	{"get miss", binReq(0x00, "k", "", "", 3, 0), binRes(0x00, 1, "", "", "Not found", 3, 0)},
	{"getk miss", binReq(0x0c, "k", "", "", 3, 0), binRes(0x0c, 1, "k", "", "", 3, 0)},
	{"set get getk", cat(binReq(0x01, "k", setExtras(0xdeadbeef, 0), "v1", 1, 0), binReq(0x00, "k", "", "", 2, 0), binReq(0x0c, "k", "", "", 3, 0)),
		cat(binRes(0x01, 0, "", "", "", 1, 1), binRes(0x00, 0, "", be32(0xdeadbeef), "v1", 2, 1), binRes(0x0c, 0, "k", be32(0xdeadbeef), "v1", 3, 1))},
	{"quiet gets", cat(binReq(0x11, "a", setExtras(1, 0), "A", 1, 0), binReq(0x09, "nokey", "", "", 2, 0), binReq(0x0d, "nokey", "", "", 3, 0), binReq(0x09, "a", "", "", 4, 0), binReq(0x0d, "a", "", "", 5, 0), binReq(0x0a, "", "", "", 6, 0)),
		cat(binRes(0x09, 0, "", be32(1), "A", 4, 1), binRes(0x0d, 0, "a", be32(1), "A", 5, 1), binRes(0x0a, 0, "", "", "", 6, 0))},
	{"add", cat(binReq(0x02, "a", setExtras(0, 0), "x", 1, 0), binReq(0x02, "a", setExtras(0, 0), "y", 2, 0), binReq(0x12, "a", setExtras(0, 0), "y", 3, 0), binReq(0x12, "b", setExtras(0, 0), "y", 4, 0)),
		cat(binRes(0x02, 0, "", "", "", 1, 1), binRes(0x02, 2, "", "", "Data exists for key.", 2, 0), binRes(0x12, 2, "", "", "Data exists for key.", 3, 0))},
	{"replace", cat(binReq(0x03, "a", setExtras(0, 0), "x", 1, 0), binReq(0x01, "a", setExtras(0, 0), "x", 2, 0), binReq(0x13, "a", setExtras(5, 0), "y", 3, 0), binReq(0x00, "a", "", "", 4, 0)),
		cat(binRes(0x03, 1, "", "", "Not found", 1, 0), binRes(0x01, 0, "", "", "", 2, 1), binRes(0x00, 0, "", be32(5), "y", 4, 2))},
	{"append prepend", cat(binReq(0x0e, "a", "", "x", 1, 0), binReq(0x1a, "a", "", "x", 2, 0), binReq(0x01, "a", setExtras(3, 0), "b", 3, 0), binReq(0x0e, "a", "", "c", 4, 0), binReq(0x1a, "a", "", "a", 5, 0), binReq(0x00, "a", "", "", 6, 0)),
		cat(binRes(0x0e, 5, "", "", "Not stored.", 1, 0), binRes(0x1a, 5, "", "", "Not stored.", 2, 0), binRes(0x01, 0, "", "", "", 3, 1), binRes(0x0e, 0, "", "", "", 4, 2), binRes(0x00, 0, "", be32(3), "abc", 6, 3))},
	{"cas", cat(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0), binReq(0x01, "a", setExtras(0, 0), "y", 2, 9), binReq(0x01, "a", setExtras(0, 0), "y", 3, 1), binReq(0x01, "b", setExtras(0, 0), "y", 4, 1)),
		cat(binRes(0x01, 0, "", "", "", 1, 1), binRes(0x01, 2, "", "", "Data exists for key.", 2, 0), binRes(0x01, 0, "", "", "", 3, 2), binRes(0x01, 1, "", "", "Not found", 4, 0))},
	{"delete", cat(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0), binReq(0x04, "a", "", "", 2, 9), binReq(0x04, "a", "", "", 3, 1), binReq(0x04, "a", "", "", 4, 0), binReq(0x14, "a", "", "", 5, 0), binReq(0x01, "a", setExtras(0, 0), "x", 6, 0), binReq(0x14, "a", "", "", 7, 0)),
		cat(binRes(0x01, 0, "", "", "", 1, 1), binRes(0x04, 2, "", "", "Data exists for key.", 2, 0), binRes(0x04, 0, "", "", "", 3, 0), binRes(0x04, 1, "", "", "Not found", 4, 0), binRes(0x14, 1, "", "", "Not found", 5, 0), binRes(0x01, 0, "", "", "", 6, 2))},
	{"incr decr", cat(binReq(0x05, "n", incrExtras(1, 0, 0xffffffff), "", 1, 0), binReq(0x05, "n", incrExtras(1, 10, 0), "", 2, 0), binReq(0x05, "n", incrExtras(5, 10, 0), "", 3, 0), binReq(0x06, "n", incrExtras(100, 0, 0), "", 4, 0), binReq(0x15, "n", incrExtras(2, 0, 0), "", 5, 0), binReq(0x16, "n", incrExtras(1, 0, 0), "", 6, 0), binReq(0x00, "n", "", "", 7, 0)),
		cat(binRes(0x05, 1, "", "", "Not found", 1, 0), binRes(0x05, 0, "", "", be64(10), 2, 1), binRes(0x05, 0, "", "", be64(15), 3, 2), binRes(0x06, 0, "", "", be64(0), 4, 3), binRes(0x00, 0, "", be32(0), "1 ", 7, 5))},
	{"incr wrap non-numeric", cat(binReq(0x01, "n", setExtras(0, 0), "18446744073709551615", 1, 0), binReq(0x05, "n", incrExtras(2, 0, 0), "", 2, 0), binReq(0x01, "s", setExtras(0, 0), "abc", 3, 0), binReq(0x05, "s", incrExtras(2, 0, 0), "", 4, 0), binReq(0x16, "s", incrExtras(2, 0, 0), "", 5, 0)),
		cat(binRes(0x01, 0, "", "", "", 1, 1), binRes(0x05, 0, "", "", be64(1), 2, 2), binRes(0x01, 0, "", "", "", 3, 3), binRes(0x05, 6, "", "", "Non-numeric server-side value for incr or decr", 4, 0), binRes(0x16, 6, "", "", "Non-numeric server-side value for incr or decr", 5, 0))},
	{"touch gat", cat(binReq(0x01, "a", setExtras(2, 0), "x", 1, 0), binReq(0x1c, "a", be32(100), "", 2, 0), binReq(0x1c, "b", be32(100), "", 3, 0), binReq(0x1d, "a", be32(100), "", 4, 0), binReq(0x1e, "b", be32(100), "", 5, 0), binReq(0x23, "a", be32(0), "", 6, 0), binReq(0x24, "a", be32(0), "", 7, 0), binReq(0x23, "b", be32(0), "", 8, 0)),
		cat(binRes(0x01, 0, "", "", "", 1, 1), binRes(0x1c, 0, "", be32(2), "", 2, 1), binRes(0x1c, 1, "", "", "Not found", 3, 0), binRes(0x1d, 0, "", be32(2), "x", 4, 1), binRes(0x23, 0, "a", be32(2), "x", 6, 1), binRes(0x24, 0, "a", be32(2), "x", 7, 1), binRes(0x23, 1, "b", "", "", 8, 0))},
	{"flush", cat(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0), binReq(0x08, "", "", "", 2, 0), binReq(0x00, "a", "", "", 3, 0), binReq(0x18, "", be32(0), "", 4, 0), binReq(0x08, "", be32(10), "", 5, 0)),
		cat(binRes(0x01, 0, "", "", "", 1, 1), binRes(0x08, 0, "", "", "", 2, 0), binRes(0x00, 1, "", "", "Not found", 3, 0), binRes(0x08, 0, "", "", "", 5, 0))},
	{"verbosity", binReq(0x1b, "", be32(1), "", 1, 0), binRes(0x1b, 0, "", "", "", 1, 0)},
	{"stat reset and unknown", cat(binReq(0x10, "reset", "", "", 1, 0), binReq(0x10, "nosuch", "", "", 2, 0)),
		cat(binRes(0x10, 0, "", "", "", 1, 0), binRes(0x10, 1, "", "", "Not found", 2, 0))},
	{"stat detail and settings", cat(binReq(0x10, "detail on", "", "", 1, 0), binReq(0x10, "detail dump", "", "", 2, 0), binReq(0x10, "detail bogus", "", "", 3, 0), binReq(0x10, "settings", "", "", 4, 0)),
		cat(binRes(0x10, 0, "", "", "", 1, 0), binRes(0x10, 0, "detailed", "", "END\r\n", 2, 0), binRes(0x10, 0, "", "", "", 2, 0), binRes(0x10, 1, "", "", "Not found", 3, 0),
			binRes(0x10, 0, "maxconns", "", "0", 4, 0), binRes(0x10, 0, "evictions", "", "on", 4, 0), binRes(0x10, 0, "domain_socket", "", "NULL", 4, 0),
			binRes(0x10, 0, "cas_enabled", "", "yes", 4, 0), binRes(0x10, 0, "binding_protocol", "", "auto-negotiate", 4, 0),
			binRes(0x10, 0, "item_size_max", "", "1024", 4, 0), binRes(0x10, 0, "flush_enabled", "", "yes", 4, 0), binRes(0x10, 0, "", "", "", 4, 0))},
	{"stat detail counts", cat(binReq(0x10, "detail on", "", "", 1, 0), binReq(0x01, "p:k", setExtras(0, 0), "v", 2, 0), binReq(0x00, "p:k", "", "", 3, 0),
		binReq(0x00, "p:x", "", "", 4, 0), binReq(0x04, "p:z", "", "", 5, 0), binReq(0x10, "detail dump", "", "", 6, 0)),
		cat(binRes(0x10, 0, "", "", "", 1, 0), binRes(0x01, 0, "", "", "", 2, 1), binRes(0x00, 0, "", be32(0), "v", 3, 1),
			binRes(0x00, 1, "", "", "Not found", 4, 0), binRes(0x04, 1, "", "", "Not found", 5, 0),
			binRes(0x10, 0, "detailed", "", "PREFIX p get 2 hit 1 set 1 del 1\r\nEND\r\n", 6, 0), binRes(0x10, 0, "", "", "", 6, 0))},
	{"unknown opcode", cat(binReq(0x30, "", "", "", 1, 0), binReq(0x20, "", "", "", 2, 0), binReq(0x0a, "", "", "", 3, 0)),
		cat(binRes(0x30, 0x81, "", "", "Unknown command", 1, 0), binRes(0x20, 0x81, "", "", "Unknown command", 2, 0), binRes(0x0a, 0, "", "", "", 3, 0))},
	{"too large swallowed", cat(binReq(0x01, "a", setExtras(0, 0), strings.Repeat("x", 976), 1, 0), binReq(0x01, "a", setExtras(0, 0), strings.Repeat("x", 5000), 2, 0), binReq(0x0a, "", "", "", 3, 0)),
		cat(binRes(0x01, 3, "", "", "Too large.", 1, 0), binRes(0x01, 3, "", "", "Too large.", 2, 0), binRes(0x0a, 0, "", "", "", 3, 0))},
	{"too large set deletes the old value", cat(
		binReq(0x01, "a", setExtras(0, 0), "old", 1, 0), binReq(0x01, "a", setExtras(0, 0), strings.Repeat("x", 976), 2, 0), binReq(0x00, "a", "", "", 3, 0),
		binReq(0x01, "b", setExtras(0, 0), "old", 4, 0), binReq(0x11, "b", setExtras(0, 0), strings.Repeat("x", 5000), 5, 0), binReq(0x00, "b", "", "", 6, 0),
		binReq(0x01, "c", setExtras(0, 0), "old", 7, 0), binReq(0x02, "c", setExtras(0, 0), strings.Repeat("x", 5000), 8, 0), binReq(0x03, "c", setExtras(0, 0), strings.Repeat("x", 976), 9, 0), binReq(0x00, "c", "", "", 10, 0)),
		cat(binRes(0x01, 0, "", "", "", 1, 1), binRes(0x01, 3, "", "", "Too large.", 2, 0), binRes(0x00, 1, "", "", "Not found", 3, 0),
			binRes(0x01, 0, "", "", "", 4, 2), binRes(0x11, 3, "", "", "Too large.", 5, 0), binRes(0x00, 1, "", "", "Not found", 6, 0),
			binRes(0x01, 0, "", "", "", 7, 3), binRes(0x02, 3, "", "", "Too large.", 8, 0), binRes(0x03, 3, "", "", "Too large.", 9, 0), binRes(0x00, 0, "", be32(0), "old", 10, 3))},
	{"huge body length", "\x80\x00\x00\x01\x00\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x09" + be64(0), binRes(0x00, 4, "", "", "Invalid arguments", 9, 0)},
	{"huge set body length swallowed until eof", "\x80\x01\x00\x01\x08\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x09" + be64(0) + "partial", binRes(0x01, 3, "", "", "Too large.", 9, 0)},
	{"big set body swallowed until eof", "\x80\x01\x00\x01\x08\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x09" + be64(0) + "partial", binRes(0x01, 3, "", "", "Too large.", 9, 0)},
	{"invalid get extras", binReq(0x00, "k", "xx", "", 1, 0) + binReq(0x0a, "", "", "", 2, 0), binRes(0x00, 4, "", "", "Invalid arguments", 1, 0)},
	{"key over body", "\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01" + be64(0) + "k", binRes(0x00, 4, "", "", "Invalid arguments", 1, 0)},
	{"bad magic later", binReq(0x0a, "", "", "", 1, 0) + "\x81" + strings.Repeat("\x00", 23), binRes(0x0a, 0, "", "", "", 1, 0)},
	{"quit", binReq(0x07, "", "", "", 1, 0) + binReq(0x0a, "", "", "", 2, 0), binRes(0x07, 0, "", "", "", 1, 0)},
	{"quitq", binReq(0x17, "", "", "", 1, 0) + binReq(0x0a, "", "", "", 2, 0), ""},
	{"truncated header", "\x80\x0a\x00", ""},
	// memcached answers these with EINVAL and closes (seen against 1.6.18).
	{"noop with a key", binReq(0x0a, "k", "", "", 1, 0) + binReq(0x0a, "", "", "", 2, 0), binRes(0x0a, 4, "", "", "Invalid arguments", 1, 0)},
	{"noop with a value", binReq(0x0a, "", "", "x", 1, 0) + binReq(0x0a, "", "", "", 2, 0), binRes(0x0a, 4, "", "", "Invalid arguments", 1, 0)},
	{"version with a value", binReq(0x0b, "", "", "x", 1, 0) + binReq(0x0a, "", "", "", 2, 0), binRes(0x0b, 4, "", "", "Invalid arguments", 1, 0)},
	{"quit with a key", binReq(0x07, "k", "", "", 1, 0), binRes(0x07, 4, "", "", "Invalid arguments", 1, 0)},
	{"quitq with a key", binReq(0x17, "k", "", "", 1, 0), binRes(0x17, 4, "", "", "Invalid arguments", 1, 0)},
	{"stat with extras", binReq(0x10, "", "abcd", "", 1, 0) + binReq(0x0a, "", "", "", 2, 0), binRes(0x10, 4, "", "", "Invalid arguments", 1, 0)},
}

func TestBinaryTranscripts(t *testing.T) { runTranscripts(t, binaryCases) }
