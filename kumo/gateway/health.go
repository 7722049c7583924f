package gateway

import "errors"

// Reasons Health gives for a gateway that cannot serve.
var (
	// ErrNoHashSpace: no manager or server has sent a hash space yet.
	ErrNoHashSpace = errors.New("gateway: no hash space yet (no manager or server has answered)")
	// ErrNoActiveServer: the hash space has no active server.
	ErrNoActiveServer = errors.New("gateway: no active server in the hash space")
)

// Health reports why the gateway cannot serve requests, or nil when the
// newest write hash space it has seen has an active server to send them to. It answers the
// --http endpoint's /healthz.
func (g *Gateway) Health() error {
	w := g.whs.Load()
	switch {
	case w.NumNodes() == 0:
		return ErrNoHashSpace
	case w.Empty() || g.allFault.Load():
		return ErrNoActiveServer
	}
	return nil
}
