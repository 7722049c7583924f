package wire

import (
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
