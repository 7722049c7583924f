package ring

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Sizes of the kumofs address dump (the node identity on the wire).
const (
	DumpSize4 = 6  // port BE16, IPv4 BE32
	DumpSize6 = 22 // port BE16, 16-byte IPv6 address, scope id BE32
)

// Addr is a node address: an IPv4 or IPv6 address, a port and (IPv6 only) a
// numeric scope id. It is a comparable value type and can be used as a map
// key. The zero Addr is invalid (IsValid reports false).
//
// An IPv4-mapped IPv6 address is always stored as IPv4, so both spellings of
// one node have the same identity.
type Addr struct {
	ip    [16]byte // IPv4 in ip[0:4] when !v6
	scope uint32
	port  uint16
	v6    bool
	ok    bool
}

// AddrFrom4 returns the IPv4 address ip with port.
func AddrFrom4(ip [4]byte, port uint16) Addr {
	a := Addr{port: port, ok: true}
	copy(a.ip[:4], ip[:])
	return a
}

// AddrFrom16 returns the IPv6 address ip with port and scope id. An
// IPv4-mapped address becomes the IPv4 Addr (the scope is dropped).
func AddrFrom16(ip [16]byte, port uint16, scope uint32) Addr {
	n := netip.AddrFrom16(ip)
	if n.Is4In6() {
		return AddrFrom4(n.Unmap().As4(), port)
	}
	return Addr{ip: ip, scope: scope, port: port, v6: true, ok: true}
}

// AddrFromAddrPort converts a netip.AddrPort. A zone that is a number is used
// as the scope id; a zone that names an interface is looked up.
func AddrFromAddrPort(ap netip.AddrPort) (Addr, error) {
	ip := ap.Addr()
	if !ip.IsValid() {
		return Addr{}, fmt.Errorf("%w: %v", ErrBadAddr, ap)
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return AddrFrom4(ip.As4(), ap.Port()), nil
	}
	scope, err := zoneID(ip.Zone())
	if err != nil {
		return Addr{}, err
	}
	return AddrFrom16(ip.As16(), ap.Port(), scope), nil
}

func zoneID(zone string) (uint32, error) {
	if zone == "" {
		return 0, nil
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("%w: unknown IPv6 zone %q", ErrBadAddr, zone)
	}
	return uint32(ifi.Index), nil
}

// ParseAddr parses "host", "host:port", "ip:port", "[ipv6]:port", "[ipv6]" or
// a bare IPv6 literal; a missing port means defaultPort. Host names are
// resolved once, here, preferring an IPv4 address as kumofs does. A port of 0
// is rejected: such an address is not connectable.
func ParseAddr(s string, defaultPort int) (Addr, error) {
	return parseAddr(s, defaultPort, lookupHost)
}

// lookupHost resolves a host name to its addresses.
func lookupHost(host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
}

func parseAddr(s string, defaultPort int, lookup func(string) ([]netip.Addr, error)) (Addr, error) {
	host, portStr, err := splitHostPort(s)
	if err != nil {
		return Addr{}, err
	}
	port := defaultPort
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return Addr{}, fmt.Errorf("%w: invalid port number: %s", ErrBadAddr, s)
		}
		port = int(p)
	}
	if port <= 0 || port > 0xffff {
		return Addr{}, fmt.Errorf("%w: port number is required: %s", ErrBadAddr, s)
	}
	if host == "" {
		return Addr{}, fmt.Errorf("%w: host is required: %s", ErrBadAddr, s)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return AddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port)))
	}
	ips, err := lookup(host)
	if err != nil || len(ips) == 0 {
		return Addr{}, fmt.Errorf("%w: can't resolve host name: %s", ErrBadAddr, host)
	}
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip
			break
		}
	}
	return AddrFromAddrPort(netip.AddrPortFrom(best, uint16(port)))
}

// splitHostPort splits s into host and port ("" when absent), handling
// bracketed and bare IPv6 literals.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("%w: missing ']': %s", ErrBadAddr, s)
		}
		host, rest := s[1:end], s[end+1:]
		switch {
		case rest == "":
			return host, "", nil
		case rest[0] == ':' && len(rest) > 1:
			return host, rest[1:], nil
		}
		return "", "", fmt.Errorf("%w: %s", ErrBadAddr, s)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", nil
	}
	if strings.IndexByte(s, ':') != i {
		return s, "", nil // bare IPv6 literal, default port
	}
	if i == len(s)-1 {
		return "", "", fmt.Errorf("%w: invalid port number: %s", ErrBadAddr, s)
	}
	return s[:i], s[i+1:], nil
}

// AddrFromDump decodes a 6-byte (IPv4) or 22-byte (IPv6) kumofs address dump.
func AddrFromDump(b []byte) (Addr, error) {
	switch len(b) {
	case DumpSize4:
		return AddrFrom4([4]byte(b[2:6]), binary.BigEndian.Uint16(b)), nil
	case DumpSize6:
		return AddrFrom16([16]byte(b[2:18]), binary.BigEndian.Uint16(b), binary.BigEndian.Uint32(b[18:])), nil
	}
	return Addr{}, fmt.Errorf("%w: address dump of %d bytes", ErrBadAddr, len(b))
}

// IsValid reports whether a was made by a constructor or parser (the zero
// Addr is not valid).
func (a Addr) IsValid() bool { return a.ok }

// Is6 reports whether a is an IPv6 address (not IPv4-mapped).
func (a Addr) Is6() bool { return a.v6 }

// Port returns the port.
func (a Addr) Port() uint16 { return a.port }

// Scope returns the IPv6 scope id (0 for IPv4).
func (a Addr) Scope() uint32 { return a.scope }

// IP returns the address without port.
func (a Addr) IP() netip.Addr {
	if !a.ok {
		return netip.Addr{}
	}
	if !a.v6 {
		return netip.AddrFrom4([4]byte(a.ip[:4]))
	}
	ip := netip.AddrFrom16(a.ip)
	if a.scope != 0 {
		ip = ip.WithZone(strconv.FormatUint(uint64(a.scope), 10))
	}
	return ip
}

// AddrPort returns a as a netip.AddrPort (the scope id becomes a numeric zone).
func (a Addr) AddrPort() netip.AddrPort { return netip.AddrPortFrom(a.IP(), a.port) }

// DumpSize returns the length of a's dump: 6 for IPv4, 22 for IPv6.
func (a Addr) DumpSize() int {
	if a.v6 {
		return DumpSize6
	}
	return DumpSize4
}

// Dump returns the kumofs address dump: port BE16 then the IPv4 address
// (6 bytes), or port, 16-byte IPv6 address and scope id BE32 (22 bytes).
func (a Addr) Dump() []byte { return a.AppendDump(make([]byte, 0, a.DumpSize())) }

// AppendDump appends a's dump to b.
func (a Addr) AppendDump(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, a.port)
	if !a.v6 {
		return append(b, a.ip[:4]...)
	}
	b = append(b, a.ip[:]...)
	return binary.BigEndian.AppendUint32(b, a.scope)
}

// Compare orders addresses as kumofs does: bytewise over the dumps, so the
// port is compared first and the IP second (kumofs compares the 6-byte dump
// plus two zero bytes with memcmp). An IPv4 dump that is a prefix of an IPv6
// dump sorts first. It returns -1, 0 or +1.
func (a Addr) Compare(b Addr) int {
	var x, y [DumpSize6]byte
	return bytes.Compare(a.AppendDump(x[:0]), b.AppendDump(y[:0]))
}

// String returns "a.b.c.d:port" for IPv4 and "[v6]:port" for IPv6 (with a
// numeric "%scope" when the scope id is not 0). The zero Addr prints as
// "invalid".
func (a Addr) String() string {
	if !a.ok {
		return "invalid"
	}
	return string(a.AppendText(make([]byte, 0, 48)))
}

// AppendText appends the String form of a to b.
func (a Addr) AppendText(b []byte) []byte {
	if !a.ok {
		return append(b, "invalid"...)
	}
	if a.v6 {
		b = append(b, '[')
		b = a.IP().AppendTo(b)
		b = append(b, ']')
	} else {
		b = a.IP().AppendTo(b)
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(a.port), 10)
}

// MarshalText implements encoding.TextMarshaler.
func (a Addr) MarshalText() ([]byte, error) { return a.AppendText(nil), nil }
