package server

import (
	"strings"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// appendParams is a SrvStore of mode with a request id and an item size
// limit, as a gateway sends an append or prepend.
func appendParams(mode uint64, data string, cas, limit uint64) []byte {
	v := wire.Value{Data: []byte(data)}
	b := msgpack.AppendArrayHeader(nil, 6)
	b = msgpack.AppendUint(b, mode)
	b = msgpack.AppendRaw(b, []byte("01234567key"))
	b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
	b = wire.AppendDBValue(b, &v)
	b = msgpack.AppendUint(b, cas)
	b = msgpack.AppendUint(b, 7) // request id
	return msgpack.AppendUint(b, limit)
}

// Ensure that an append or prepend whose result memcached could not fit in
// the gateway's item size limit is not stored, counting as memcached does
// (key, value, 59 bytes, 4 more for nonzero flags), after the CAS compare;
// without a limit (older gateways) the 64 MiB bound stays.
func TestDecideAppendLimit(t *testing.T) {
	// key "key" (3 bytes) + 59: a 100-byte limit leaves 38 bytes of value.
	old := store.Record{Value: []byte(strings.Repeat("v", 30)), Clock: 77}
	flagged := old
	flagged.Flags = 5
	tests := []struct {
		name   string
		params []byte
		old    store.Record
		status int
	}{
		{"append fits", appendParams(wire.OpAppend, "12345678", 0, 100), old, wire.StatusOK},
		{"append one over", appendParams(wire.OpAppend, "123456789", 0, 100), old, wire.StatusNotStored},
		{"prepend one over", appendParams(wire.OpPrepend, "123456789", 0, 100), old, wire.StatusNotStored},
		{"flags count", appendParams(wire.OpAppend, "12345", 0, 100), flagged, wire.StatusNotStored},
		{"flags, fits", appendParams(wire.OpAppend, "1234", 0, 100), flagged, wire.StatusOK},
		{"cas first", appendParams(wire.OpAppend, "123456789", 76, 100), old, wire.StatusExists},
		{"no limit", appendParams(wire.OpAppend, strings.Repeat("x", 1000), 0, 0), old, wire.StatusOK},
	}
	var s Server
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var op writeOp
			if err := op.parse(&rpc.Request{Method: wire.SrvStore, Params: tt.params}); err != nil {
				t.Fatalf("parse: %v", err)
			}
			o := tt.old
			_, status, _, err := s.decide(&op, &o, true)
			if err != nil || status != tt.status {
				t.Fatalf("decide = status %d err %v; want %d", status, err, tt.status)
			}
		})
	}
}
