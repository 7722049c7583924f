package memcache_test

import (
	"testing"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

func TestMemccapable(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil), Logf: t.Logf})
	memtest.RunMemccapable(t, addr)
}
