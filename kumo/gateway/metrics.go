package gateway

import (
	"errors"
	"time"

	"kumofs/internal/metrics"
	"kumofs/proto/memcache"
)

// Commands and results of kumo_requests_total on a gateway.
var (
	gwCmds    = []string{"get", "store", "delete", "incr", "touch", "flush"}
	gwResults = []string{"hit", "miss", "ok", "not_stored", "exists", "not_found", "error"}
)

const (
	cmdGet = iota
	cmdStore
	cmdDelete
	cmdIncr
	cmdTouch
	cmdFlush
)

const (
	resHit = iota
	resMiss
	resOK
	resNotStored
	resExists
	resNotFound
	resError
)

// gwMetrics holds the counters looked up once at start.
type gwMetrics struct {
	total   [6][7]*metrics.Counter
	latency [6]*metrics.Histogram
	retries *metrics.Counter
	relays  *metrics.Counter
	// direct sets stored by every owner; refused by one (sent again)
	directStored, directRefused *metrics.Counter
	rpcErrs                     *metrics.RPCErrors
}

func (g *Gateway) registerMetrics(reg *metrics.Registry) {
	req := metrics.NewRequests(reg, gwCmds, gwResults)
	for i, c := range gwCmds {
		for j, r := range gwResults {
			g.m.total[i][j] = req.Total.With(c, r)
		}
		g.m.latency[i] = req.Latency.With(c)
	}
	g.m.retries = reg.NewCounter(metrics.GatewayRetryTotal, metrics.Help(metrics.GatewayRetryTotal))
	g.m.relays = reg.NewCounter(metrics.GatewayRelayTotal, metrics.Help(metrics.GatewayRelayTotal))
	g.m.rpcErrs = metrics.NewRPCErrors(reg)
	dv := reg.NewCounterVec(metrics.DirectSetsTotal, metrics.Help(metrics.DirectSetsTotal),
		[]string{"result"}, [][]string{{"stored"}, {"refused"}})
	g.m.directStored, g.m.directRefused = dv.With("stored"), dv.With("refused")
	reg.NewGaugeVecFunc(metrics.Connections, metrics.Help(metrics.Connections), []string{"kind"},
		func(emit func([]string, float64)) {
			cur, _ := g.mc.Conns()
			emit([]string{"memcache"}, float64(cur))
		})
	reg.NewCounterVecFunc(metrics.ConnectionsTotal, metrics.Help(metrics.ConnectionsTotal), []string{"kind"},
		func(emit func([]string, float64)) {
			_, total := g.mc.Conns()
			emit([]string{"memcache"}, float64(total))
		})
}

// observe counts one request of cmd that started at start and ended with err.
func (g *Gateway) observe(cmd int, start time.Time, err error) {
	g.m.latency[cmd].Observe(time.Since(start))
	res := resOK
	switch {
	case err == nil:
		if cmd == cmdGet {
			res = resHit
		}
	case errors.Is(err, memcache.ErrNotFound):
		res = resNotFound
		if cmd == cmdGet {
			res = resMiss
		}
	case errors.Is(err, memcache.ErrNotStored):
		res = resNotStored
	case errors.Is(err, memcache.ErrExists):
		res = resExists
	default:
		res = resError
	}
	g.m.total[cmd][res].Inc()
}
