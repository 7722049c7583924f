package gateway

import (
	"errors"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
)

func TestArithResult(t *testing.T) {
	reply := func(fields ...any) []byte {
		b := msgpack.AppendArrayHeader(nil, uint32(len(fields)))
		for _, f := range fields {
			switch v := f.(type) {
			case int:
				b = msgpack.AppendUint(b, uint64(v))
			case bool:
				b = msgpack.AppendBool(b, v)
			}
		}
		return b
	}
	create := &memcache.Item{Value: []byte("5")}
	tests := []struct {
		name   string
		res    []byte
		create *memcache.Item
		want   memcache.ArithResult
		err    error
	}{
		{"new server", reply(wire.StatusOK, 12, 99, false, 700), nil, memcache.ArithResult{Value: 12, CAS: 99, OldExptime: 700}, nil},
		{"new server created", reply(wire.StatusOK, 5, 99, true, 0), create, memcache.ArithResult{Value: 5, CAS: 99, Created: true}, nil},
		{"old server guesses created", reply(wire.StatusOK, 5, 99), create, memcache.ArithResult{Value: 5, CAS: 99, Created: true}, nil},
		{"old server incremented", reply(wire.StatusOK, 6, 99), create, memcache.ArithResult{Value: 6, CAS: 99}, nil},
		{"exists", reply(wire.StatusExists, 0, 0, false, 0), nil, memcache.ArithResult{}, memcache.ErrExists},
		{"not found", reply(wire.StatusNotFound, 0, 0), nil, memcache.ArithResult{}, memcache.ErrNotFound},
		{"non-numeric", reply(wire.StatusNonNumeric, 0, 0, false, 0), nil, memcache.ArithResult{}, memcache.ErrNonNumeric},
		{"short", reply(wire.StatusOK, 5), nil, memcache.ArithResult{}, ErrBadReply},
		{"truncated", reply(wire.StatusOK, 5, 99, true, 700)[:6], nil, memcache.ArithResult{}, ErrBadReply},
		{"garbage", []byte{0xc1}, nil, memcache.ArithResult{}, ErrBadReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r memcache.ArithResult
			a := &memcache.Arith{Delta: 1, Create: tt.create}
			err := arithResult(tt.res, a, 5, &r)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && r != tt.want {
				t.Errorf("result %+v, want %+v", r, tt.want)
			}
		})
	}
}
