package memcache_test

import (
	"bytes"
	"encoding/binary"
	"regexp"
	"testing"
	"testing/iotest"
)

// FuzzText feeds arbitrary bytes to a text-protocol connection. Nothing may
// panic or hang, and the reply must not depend on how the input is split
// into reads.
func FuzzText(f *testing.F) {
	for _, tc := range textCases {
		f.Add([]byte(tc.req))
	}
	for _, tc := range metaCases {
		f.Add([]byte(tc.req))
	}
	for _, tc := range compatCases {
		f.Add([]byte(tc.req))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 0 && in[0] == 0x80 {
			in[0] = 'x' // keep to the text parser
		}
		whole := converse(nil, in, func(r ioReader) ioReader { return r })
		split := converse(nil, in, iotest.OneByteReader)
		// stats reports the bytes read and written so far, which
		// depend on when the reads and the flushes happened.
		whole, split = bytesRE.ReplaceAll(whole, []byte("bytes_$1 N")), bytesRE.ReplaceAll(split, []byte("bytes_$1 N"))
		if !bytes.Equal(whole, split) {
			t.Fatalf("reply depends on read sizes:\nwhole %q\nsplit %q", whole, split)
		}
	})
}

// bytesRE matches the stats lines whose numbers depend on read sizes.
var bytesRE = regexp.MustCompile(`bytes_(read|written) \d+`)

// FuzzBinary feeds arbitrary bytes after a binary magic. Every reply must be
// a well-formed response packet and the reply must not depend on how the
// input is split.
func FuzzBinary(f *testing.F) {
	for _, tc := range binaryCases {
		f.Add([]byte(tc.req))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		in = append([]byte{0x80}, in...)
		whole := converse(nil, in, func(r ioReader) ioReader { return r })
		split := converse(nil, in, iotest.HalfReader)
		if !bytes.Equal(maskBinaryByteCounts(whole), maskBinaryByteCounts(split)) {
			t.Fatalf("reply depends on read sizes:\nwhole %x\nsplit %x", whole, split)
		}
		for p := whole; len(p) > 0; {
			if len(p) < 24 || p[0] != 0x81 {
				t.Fatalf("malformed response stream at %x", p)
			}
			body := int(binary.BigEndian.Uint32(p[8:]))
			keylen := int(binary.BigEndian.Uint16(p[2:]))
			if len(p) < 24+body || keylen+int(p[4]) > body {
				t.Fatalf("bad response lengths in %x", p[:24])
			}
			p = p[24+body:]
		}
	})
}

// maskBinaryByteCounts returns the response stream b with the values of
// the STAT packets bytes_read and bytes_written emptied (see bytesRE); a
// stream it cannot parse comes back as it is.
func maskBinaryByteCounts(b []byte) []byte {
	var out []byte
	for p := b; len(p) > 0; {
		if len(p) < 24 {
			return b
		}
		body := int(binary.BigEndian.Uint32(p[8:]))
		keylen := int(binary.BigEndian.Uint16(p[2:]))
		extlen := int(p[4])
		if len(p) < 24+body || keylen+extlen > body {
			return b
		}
		pkt := p[:24+body]
		key := string(pkt[24+extlen : 24+extlen+keylen])
		if pkt[1] == 0x10 && (key == "bytes_read" || key == "bytes_written") {
			h := append([]byte(nil), pkt[:24+extlen+keylen]...)
			binary.BigEndian.PutUint32(h[8:], uint32(extlen+keylen))
			pkt = h
		}
		out = append(out, pkt...)
		p = p[24+body:]
	}
	return out
}
