package wire

import (
	"kumofs/kumo/clock"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// PeerName names the daemon at the other end of c for log lines and the
// clock's refusal reports: the address it announced in its hello, else the
// connection's remote address ("" for a nil c).
func PeerName(c *rpc.Conn) string {
	if c == nil {
		return ""
	}
	if h := c.Hello(); h != nil {
		if a, err := ring.AddrFromDump(h.Addr); err == nil {
			return a.String()
		}
	}
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// PeerOf is c as a clock.Peer, named by PeerName only when a clock from it
// is refused: formatting the address on every request would allocate.
func PeerOf(c *rpc.Conn) clock.Peer { return (*peerConn)(c) }

type peerConn rpc.Conn

func (p *peerConn) String() string { return PeerName((*rpc.Conn)(p)) }
