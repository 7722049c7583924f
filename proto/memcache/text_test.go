package memcache_test

import (
	"strings"
	"testing"
)

var (
	k250 = strings.Repeat("k", 250)
	k251 = strings.Repeat("k", 251)
	v900 = strings.Repeat("v", 900)
	// 30 KB get line: longer than the read buffer, taken by the long path.
	longGet = "get " + strings.Repeat(strings.Repeat("g", 100)+" ", 300) + "\r\n"
)

// textCases: request bytes → exact reply bytes of a fresh server (fixed
// clock t0 = 1800000000, MaxItemSize 1024, CAS uniques counting from 1).
var textCases = []transcript{
	{"version", "version\r\n", "VERSION 1.6.18-kumo\r\n"},
	{"unknown", "foo bar\r\n", "ERROR\r\n"},
	{"empty line", "\r\n", "ERROR\r\n"},
	{"case sensitive", "GET a\r\n", "ERROR\r\n"},
	{"bare newline", "set nl 0 0 1\nx\r\nget nl\n", "STORED\r\nVALUE nl 0 1\r\nx\r\nEND\r\n"},
	{"extra spaces", "set  sp  0  0  1 \r\nx\r\nget   sp \r\n", "STORED\r\nVALUE sp 0 1\r\nx\r\nEND\r\n"},
	{"set get flags", "set a 4294967295 0 3\r\nabc\r\nget a\r\n", "STORED\r\nVALUE a 4294967295 3\r\nabc\r\nEND\r\n"},
	{"flags truncated", "set a 4294967296 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"},
	{"flags 2^64", "set a 18446744073709551616 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
	{"negative flags", "set a -1 0 3\r\nabc\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
	{"negative length", "set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
	{"length 2^32-1", "set a 0 0 4294967295\r\nversion\r\n", "CLIENT_ERROR bad command line format\r\nVERSION 1.6.18-kumo\r\n"},
	{"non-numeric length", "set a 0 0 x\r\nabc\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
	{"missing args", "set a 0 0\r\n", "ERROR\r\n"},
	{"too many args", "set a 0 0 1 noreply x\r\n", "ERROR\r\n"},
	{"bad data chunk", "set a 0 0 3\r\nabcde\r\nget a\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"},
	{"bad data chunk eof", "set a 0 0 3\r\nabcXY", "CLIENT_ERROR bad data chunk\r\n"},
	{"key 250", "set " + k250 + " 0 0 1\r\nx\r\nget " + k250 + "\r\n", "STORED\r\nVALUE " + k250 + " 0 1\r\nx\r\nEND\r\n"},
	{"key 251 set", "set " + k251 + " 0 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
	{"key 251 get", "get a " + k251 + "\r\n", "CLIENT_ERROR bad command line format\r\n"},
	{"control byte key", "set a\x01b 0 0 1\r\nx\r\nget a\x01b\r\n", "STORED\r\nVALUE a\x01b 0 1\r\nx\r\nEND\r\n"},
	{"value at limit", "set big 0 0 962\r\n" + strings.Repeat("x", 962) + "\r\nmg big s\r\n", "STORED\r\nHD s962\r\n"},
	{"value over limit swallowed", "set big 0 0 963\r\n" + strings.Repeat("x", 963) + "\r\nget big\r\n", "SERVER_ERROR object too large for cache\r\nEND\r\n"},
	{"too large set drops old", "set b 0 0 1\r\nx\r\nset b 0 0 2000\r\n" + strings.Repeat("y", 2000) + "\r\nget b\r\n", "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n"},
	{"too large noreply", "set b 0 0 2000 noreply\r\n" + strings.Repeat("y", 2000) + "\r\nmn\r\n", "MN\r\n"},
	{"zero length", "set z 0 0 0\r\n\r\nget z\r\n", "STORED\r\nVALUE z 0 0\r\n\r\nEND\r\n"},
	{"value with crlf", "set c 0 0 4\r\n\r\n\r\n\r\nget c\r\n", "STORED\r\nVALUE c 0 4\r\n\r\n\r\n\r\nEND\r\n"},
	{"noreply storage", "set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nreplace a 0 0 1 noreply\r\nz\r\nappend a 0 0 1 noreply\r\n1\r\nprepend a 0 0 1 noreply\r\n0\r\ncas a 0 0 1 99 noreply\r\nq\r\nget a\r\n", "VALUE a 0 3\r\n0z1\r\nEND\r\n"},
	{"noreply errors silent", "set s 0 0 1\r\nx\r\nincr s 1 noreply\r\nincr nokey 1 noreply\r\ndelete nokey noreply\r\ntouch nokey 1 noreply\r\nset " + k251 + " 0 0 1 noreply\r\nmn\r\n", "STORED\r\nMN\r\n"},
	{"add", "set a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nadd b 0 0 1\r\ny\r\nget a b\r\n", "STORED\r\nNOT_STORED\r\nSTORED\r\nVALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n"},
	{"replace", "replace a 0 0 1\r\nx\r\nset a 0 0 1\r\nx\r\nreplace a 3 0 1\r\ny\r\nget a\r\n", "NOT_STORED\r\nSTORED\r\nSTORED\r\nVALUE a 3 1\r\ny\r\nEND\r\n"},
	{"append prepend missing", "append a 0 0 1\r\nx\r\nprepend a 0 0 1\r\nx\r\n", "NOT_STORED\r\nNOT_STORED\r\n"},
	{"append prepend keep flags", "set ap 7 0 1\r\nb\r\nappend ap 9 0 1\r\nc\r\nprepend ap 9 0 1\r\na\r\ngets ap\r\n", "STORED\r\nSTORED\r\nSTORED\r\nVALUE ap 7 3 3\r\nabc\r\nEND\r\n"},
	{"cas", "set c 0 0 1\r\nx\r\ngets c\r\ncas c 0 0 1 1\r\ny\r\ncas c 0 0 1 1\r\nz\r\ncas nokey 0 0 1 1\r\nz\r\ncas c 0 0 1\r\nz\r\ngets c\r\n",
		"STORED\r\nVALUE c 0 1 1\r\nx\r\nEND\r\nSTORED\r\nEXISTS\r\nNOT_FOUND\r\nERROR\r\nERROR\r\nVALUE c 0 1 2\r\ny\r\nEND\r\n"},
	{"noreply in place of cas unique", "cas x 0 0 1 noreply\r\nx\r\nset x 0 0 1 noreply\r\nxyz\r\nmn\r\n", "ERROR\r\nERROR\r\nMN\r\n"},
	{"cas bad unique", "cas c 0 0 1 x\r\ny\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
	{"multi get", "set m1 0 0 1\r\n1\r\nset m2 0 0 1\r\n2\r\nget m1 nokey m2 m1\r\n", "STORED\r\nSTORED\r\nVALUE m1 0 1\r\n1\r\nVALUE m2 0 1\r\n2\r\nVALUE m1 0 1\r\n1\r\nEND\r\n"},
	{"get no key", "get\r\ngets \r\n", "ERROR\r\nERROR\r\n"},
	{"long multi get", longGet, "END\r\n"},
	{"line too long", strings.Repeat("x", 20000), "CLIENT_ERROR line too long\r\n"},
	{"exptime never", "set e 0 0 1\r\nx\r\nmg e t\r\n", "STORED\r\nHD t-1\r\n"},
	{"exptime negative", "set e 0 -1 1\r\nx\r\nget e\r\n", "STORED\r\nEND\r\n"},
	{"exptime relative 30d", "set e 0 2592000 1\r\nx\r\nmg e t\r\n", "STORED\r\nHD t2592000\r\n"},
	{"exptime absolute past", "set e 0 2592001 1\r\nx\r\nget e\r\n", "STORED\r\nEND\r\n"},
	{"exptime absolute future", "set e 0 1800000100 1\r\nx\r\nmg e t\r\n", "STORED\r\nHD t100\r\n"},
	{"exptime non-numeric", "set e 0 abc 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
	{"incr decr", "set n 0 0 3\r\n100\r\nincr n 5\r\ndecr n 6\r\ngets n\r\ndecr n 1000\r\n", "STORED\r\n105\r\n99\r\nVALUE n 0 3 3\r\n99 \r\nEND\r\n0\r\n"},
	{"incr wraps", "set w 0 0 20\r\n18446744073709551615\r\nincr w 2\r\n", "STORED\r\n1\r\n"},
	{"incr non-numeric", "set s 0 0 3\r\nabc\r\nincr s 1\r\ndecr s 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
	{"incr bad delta", "incr n abc\r\nincr n -1\r\nincr n 18446744073709551616\r\n", "CLIENT_ERROR invalid numeric delta argument\r\nCLIENT_ERROR invalid numeric delta argument\r\nCLIENT_ERROR invalid numeric delta argument\r\n"},
	{"incr missing", "incr nokey 1\r\ndecr nokey 1\r\n", "NOT_FOUND\r\nNOT_FOUND\r\n"},
	{"incr args", "incr n\r\nincr " + k251 + " 1\r\n", "ERROR\r\nCLIENT_ERROR bad command line format\r\n"},
	{"incr spaces", "set sp 0 0 3\r\n 1 \r\nincr sp 1\r\n", "STORED\r\n2\r\n"},
	{"delete", "set d 0 0 1\r\nx\r\ndelete d\r\ndelete d\r\n", "STORED\r\nDELETED\r\nNOT_FOUND\r\n"},
	{"delete forms", "delete d 0\r\ndelete d 10\r\ndelete d 0 noreply\r\ndelete d noreply\r\ndelete d 0 x\r\ndelete\r\ndelete a b c d\r\n",
		"NOT_FOUND\r\nCLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\nCLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\nERROR\r\nERROR\r\n"},
	{"touch", "set t 0 0 1\r\nx\r\ntouch t 100\r\nmg t t\r\ntouch nokey 100\r\ntouch t abc\r\ntouch t\r\n", "STORED\r\nTOUCHED\r\nHD t100\r\nNOT_FOUND\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\n"},
	{"gat gats", "set g 5 0 1\r\nx\r\ngat 100 g nokey\r\ngats 200 g\r\nmg g t\r\n", "STORED\r\nVALUE g 5 1\r\nx\r\nEND\r\nVALUE g 5 1 1\r\nx\r\nEND\r\nHD t200\r\n"},
	{"gat forms", "gat 100\r\ngat\r\ngat abc k\r\ngat 1 " + k251 + "\r\n", "END\r\nERROR\r\nCLIENT_ERROR invalid exptime argument\r\nCLIENT_ERROR bad command line format\r\n"},
	{"verbosity", "verbosity 1\r\nverbosity\r\nverbosity 1 noreply\r\nversion\r\n", "OK\r\nERROR\r\nVERSION 1.6.18-kumo\r\n"},
	{"flush_all", "set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\nflush_all 0\r\nflush_all -1\r\nflush_all noreply\r\nflush_all abc\r\nflush_all 1 2 3\r\n",
		"STORED\r\nOK\r\nEND\r\nOK\r\nOK\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\n"},
	{"flush_all delayed", "set f 0 0 1\r\nx\r\nflush_all 2\r\nget f\r\nflush_all 10 noreply\r\nget f\r\n", "STORED\r\nOK\r\nVALUE f 0 1\r\nx\r\nEND\r\nVALUE f 0 1\r\nx\r\nEND\r\n"},
	{"stats sub", "stats reset\r\nstats nosuch\r\nstats detail dump\r\nstats detail on\r\nstats items\r\nstats slabs\r\n", "RESET\r\nERROR\r\nEND\r\nOK\r\nEND\r\nEND\r\n"},
	{"stats detail usage", "stats detail\r\nstats detail x\r\nstats detail off extra\r\n",
		"CLIENT_ERROR usage: stats detail on|off|dump\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\nOK\r\n"},
	{"cache_memlimit", "cache_memlimit 1024\r\ncache_memlimit x\r\ncache_memlimit 1 noreply\r\ncache_memlimit\r\n", "OK\r\nERROR\r\nERROR\r\n"},
	{"verbosity level", "verbosity abc\r\nverbosity abc noreply\r\nverbosity noreply\r\nverbosity 1 2\r\n", "CLIENT_ERROR bad command line format\r\nOK\r\n"},
	{"incr noreply as delta", "set s 0 0 1\r\n5\r\nincr s noreply\r\ndecr s noreply\r\nincr s 1 x\r\n", "STORED\r\n6\r\n"},
	{"quit", "set a 0 0 1\r\nx\r\nquit\r\nversion\r\n", "STORED\r\n"},
	{"pipelined", "set p 0 0 1\r\n1\r\nget p\r\nincr p 1\r\nget p\r\ndelete p\r\n", "STORED\r\nVALUE p 0 1\r\n1\r\nEND\r\n2\r\nVALUE p 0 1\r\n2\r\nEND\r\nDELETED\r\n"},
	{"eof mid line", "get a", ""},
	{"eof mid data", "set a 0 0 10\r\nabc", ""},
}

// metaCases cover the meta commands.
var metaCases = []transcript{
	{"mn", "mn\r\n", "MN\r\n"},
	{"ms mg flags", "ms mk 2 F5 T0\r\nhi\r\nmg mk v f t c k s Oabc\r\nmg nokey v\r\nmg nokey v q\r\nmn\r\n", "HD\r\nVA 2 f5 t-1 c1 kmk s2 Oabc\r\nhi\r\nEN\r\nMN\r\n"},
	{"mg hit no value", "ms k 1 T100\r\nx\r\nmg k\r\nmg k s t h l q\r\n", "HD\r\nHD\r\nHD s1 t100 h1 l0\r\n"},
	{"ms modes", "ms mk 1\r\nh\r\nms mk 1 ME\r\nx\r\nms mk 1 MA\r\ny\r\nms mk 1 MP\r\nz\r\nms nokey 1 MR\r\nz\r\nms mk 2 MR\r\nab\r\nms mk 1 MS\r\nc\r\nmg mk v\r\n",
		"HD\r\nNS\r\nHD\r\nHD\r\nNS\r\nHD\r\nHD\r\nVA 1\r\nc\r\n"},
	{"ms cas", "ms mc 1\r\nx\r\nms mc 1 C9\r\ny\r\nms mc 1 C1 c\r\nz\r\nms nokey 1 C1\r\nz\r\n", "HD\r\nEX\r\nHD c2\r\nNF\r\n"},
	{"ms return flags", "ms mk 1 k O123 c q\r\nx\r\nms mk 1 k O123 c\r\nx\r\n", "HD kmk O123 c2\r\n"},
	{"ms errors", "ms\r\nms mk\r\nms mk x\r\nms mk 1 MX\r\nx\r\nms mk 1 !\r\nx\r\nms mk 1 Fz\r\nx\r\nms mk 1\r\nxy\r\nmn\r\n",
		"ERROR\r\nCLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\nCLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR invalid flag\r\nCLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nMN\r\n"},
	{"ms E", "ms k 1 E777 c\r\nx\r\nmg k c\r\nms k 1 C777 c\r\ny\r\nmg v N0 E55 c\r\n", "HD c777\r\nHD c777\r\nHD c1\r\nHD c55 W\r\n"},
	{"ms too large", "ms big 2000\r\n" + strings.Repeat("y", 2000) + "\r\nmg big\r\n", "SERVER_ERROR object too large for cache\r\nEN\r\n"},
	{"ms key too long", "ms " + k251 + " 1\r\nx\r\nmn\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\nMN\r\n"},
	{"md", "ms mk 1\r\nx\r\nmd mk\r\nmd mk\r\nmd mk q\r\nms mk 1\r\nx\r\nmd mk q\r\nmn\r\n", "HD\r\nHD\r\nNF\r\nNF\r\nHD\r\nMN\r\n"},
	{"md cas", "ms mk 1\r\nx\r\nmd mk C5 Oq kk\r\nmd mk C1 O7 k\r\n", "HD\r\nEX Oq kmk\r\nHD O7 kmk\r\n"},
	{"ma", "ma nocnt\r\nma cnt N0 J10 v\r\nma cnt v\r\nma cnt MD D20 v\r\nma cnt D5\r\nma cnt q\r\nma cnt v c k O1\r\n", "NF\r\nVA 2\r\n10\r\nVA 2\r\n11\r\nVA 1\r\n0\r\nHD\r\nVA 1 c6 kcnt O1\r\n7\r\n"},
	{"ma errors", "ms s 1\r\nx\r\nma s\r\nma s MX\r\nma s Dx\r\nma\r\nma s E1\r\n", "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nCLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate flag\r\nERROR\r\nCLIENT_ERROR invalid or duplicate flag\r\n"},
	{"duplicate flags", "mg k v v\r\nms k 1 T1 T2\r\nx\r\nmd k q q\r\nma k O1 O2\r\n", "CLIENT_ERROR duplicate flag\r\nCLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n"},
	{"mg errors", "mg\r\nmg mk !\r\nmg " + k251 + " v\r\nmg k Tx\r\nmg k O" + strings.Repeat("o", 33) + "\r\n",
		"ERROR\r\nCLIENT_ERROR invalid flag\r\nCLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad token in command line format\r\nCLIENT_ERROR opaque token too long\r\n"},
	{"mg touch", "ms k 1 T10\r\nx\r\nmg k T300 t v\r\nmg k t\r\n", "HD\r\nVA 1 t300\r\nx\r\nHD t300\r\n"},
	{"mg vivify", "mg k N30 t v c\r\nmg k N30 t v c\r\n", "VA 0 t30 c1 W\r\n\r\nVA 0 t30 c1 Z\r\n\r\n"},
	{"base64 key", "ms Zm9v 1 b\r\nx\r\nget foo\r\nmg Zm9v b k v\r\nmd Zm9v b q\r\nget foo\r\nmg !!! b\r\n", "HD\r\nVALUE foo 0 1\r\nx\r\nEND\r\nVA 1 kZm9v b\r\nx\r\nEND\r\nCLIENT_ERROR error decoding key\r\n"},
	// Replies without an item carry O and k, as memcached 1.6.18 sends them.
	{"miss return flags", "mg nokey v k Oab s\r\nmg bm9rZXk= b Oz k\r\nmg nokey k q\r\nmd nokey k O1\r\nma nokey k O2 c v\r\nma nokey q Ox\r\nmn\r\n",
		"EN knokey Oab\r\nEN Oz kbm9rZXk= b\r\nNF knokey O1\r\nNF knokey O2\r\nNF Ox\r\nMN\r\n"},
	{"base64 key flag order", "ms Zm9v 1 b k Oz c\r\nx\r\nmg Zm9v b k Oz s\r\n", "HD kZm9v b Oz c1\r\nHD kZm9v b Oz s1\r\n"},
	{"ma q", "ma n N0 J5 q v\r\nma n q v\r\nma n q\r\nma n v\r\nma m N0 J3 q\r\nmn\r\n", "VA 1\r\n5\r\nVA 1\r\n8\r\nHD\r\nMN\r\n"},
	{"me", "set dbg 0 0 1\r\nx\r\nme dbg\r\nme nokey\r\nme\r\n", "STORED\r\nME dbg exp=-1 la=0 cas=1 fetch=no cls=1 size=63\r\nEN\r\nCLIENT_ERROR bad command line format\r\n"},
}

func TestTextTranscripts(t *testing.T) { runTranscripts(t, textCases) }
func TestMetaTranscripts(t *testing.T) { runTranscripts(t, metaCases) }
