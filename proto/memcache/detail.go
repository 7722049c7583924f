package memcache

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// Per-prefix statistics, memcached's "stats detail on|off|dump": while on,
// every get (each key of a multi-key get), hit, store and delete of a key
// with a prefix (the bytes before its first ':') is counted under that
// prefix. "stats detail dump" lists them, one "PREFIX <p> get <n> hit <n>
// set <n> del <n>" line each, sorted by prefix (memcached's order is its
// hash table's); "stats reset" clears them. At most maxPrefixes prefixes
// are kept, so that keys a client makes up cannot grow the table without
// bound; requests on further prefixes are not counted.

// maxPrefixes bounds the per-prefix table.
const maxPrefixes = 4096

// prefixStats is the per-prefix table of a Server.
type prefixStats struct {
	on atomic.Bool // counting; read on every request

	mu sync.Mutex // protects m
	m  map[string]*prefixCount
}

// prefixCount is one prefix's counters; guarded by prefixStats.mu.
type prefixCount struct {
	get, hit, set, del uint64
}

// Prefix counters a request adds to.
const (
	detailGet = iota
	detailHit // a get that found its key
	detailSet
	detailDel
)

// note counts one request of kind on key's prefix, if detail is on.
func (p *prefixStats) note(key []byte, kind int) {
	if !p.on.Load() {
		return
	}
	i := bytes.IndexByte(key, ':')
	if i < 0 || bytes.IndexByte(key[:i], 0) >= 0 { // memcached's prefix ends at a NUL too
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.m[string(key[:i])]
	if c == nil {
		if len(p.m) >= maxPrefixes {
			return
		}
		if p.m == nil {
			p.m = make(map[string]*prefixCount)
		}
		c = new(prefixCount)
		p.m[string(key[:i])] = c
	}
	switch kind {
	case detailGet:
		c.get++
	case detailHit:
		c.get++
		c.hit++
	case detailSet:
		c.set++
	case detailDel:
		c.del++
	}
}

// dump appends the "PREFIX" lines and the closing "END\r\n".
func (p *prefixStats) dump(b []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.m))
	for k := range p.m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		c := p.m[k]
		b = append(b, "PREFIX "...)
		b = append(b, k...)
		b = append(b, " get "...)
		b = strconv.AppendUint(b, c.get, 10)
		b = append(b, " hit "...)
		b = strconv.AppendUint(b, c.hit, 10)
		b = append(b, " set "...)
		b = strconv.AppendUint(b, c.set, 10)
		b = append(b, " del "...)
		b = strconv.AppendUint(b, c.del, 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "END\r\n"...)
}

// reset forgets every prefix (stats reset).
func (p *prefixStats) reset() {
	p.mu.Lock()
	p.m = nil
	p.mu.Unlock()
}
