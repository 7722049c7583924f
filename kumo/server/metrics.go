package server

import (
	"time"

	"kumofs/internal/metrics"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
)

// serverMetrics are the counters on the request path, looked up once.
type serverMetrics struct {
	get, miss, write, writeErr, replicate *metrics.Counter
	replOK, replRetry, replErr            *metrics.Counter
	copyOK, copyErr                       *metrics.Counter
	direct, directRefused                 *metrics.Counter // direct sets stored; refused
	repairOK, repairErr                   *metrics.Counter // records pushed by repair (see repair.go)
	getLat, writeLat                      *metrics.Histogram
	replLat                               *metrics.Histogram
	rpcErrs                               *metrics.RPCErrors
}

// registerMetrics registers the server's metrics in reg.
func (s *Server) registerMetrics(reg *metrics.Registry) {
	s.m.rpcErrs = metrics.NewRPCErrors(reg)
	reg.NewGaugeVecFunc(metrics.Connections, metrics.Help(metrics.Connections), []string{"kind"},
		func(emit func([]string, float64)) { emit([]string{"rpc"}, float64(s.rpcSrv.Conns())) })
	reg.NewCounterVecFunc(metrics.ConnectionsTotal, metrics.Help(metrics.ConnectionsTotal), []string{"kind"},
		func(emit func([]string, float64)) { emit([]string{"rpc"}, float64(s.rpcSrv.Accepted())) })
	metrics.RegisterStore(reg, func() metrics.StoreFigures {
		st := s.db.Stats()
		return metrics.StoreFigures{Records: st.Records, Buckets: st.Buckets, Load: st.Load(),
			LiveBytes: st.LiveBytes, DeadBytes: st.DeadBytes, FileBytes: st.FileSize}
	})
	req := metrics.NewRequests(reg, []string{"get", "write", "replicate"}, []string{"hit", "miss", "ok", "error"})
	s.m.get = req.Total.With("get", "hit")
	s.m.miss = req.Total.With("get", "miss")
	s.m.write = req.Total.With("write", "ok")
	s.m.writeErr = req.Total.With("write", "error")
	s.m.replicate = req.Total.With("replicate", "ok")
	s.m.getLat = req.Latency.With("get")
	s.m.writeLat = req.Latency.With("write")
	rv := reg.NewCounterVec(metrics.ReplicateTotal, metrics.Help(metrics.ReplicateTotal),
		[]string{"result"}, [][]string{{"ok"}, {"retry"}, {"error"}})
	s.m.replOK, s.m.replRetry, s.m.replErr = rv.With("ok"), rv.With("retry"), rv.With("error")
	dv := reg.NewCounterVec(metrics.DirectSetsTotal, metrics.Help(metrics.DirectSetsTotal),
		[]string{"result"}, [][]string{{"stored"}, {"refused"}})
	s.m.direct, s.m.directRefused = dv.With("stored"), dv.With("refused")
	rp := reg.NewCounterVec(metrics.RepairRecordsTotal, metrics.Help(metrics.RepairRecordsTotal),
		[]string{"result"}, [][]string{{"ok"}, {"error"}})
	s.m.repairOK, s.m.repairErr = rp.With("ok"), rp.With("error")
	s.m.replLat = reg.NewHistogram(metrics.ReplicateDuration, metrics.Help(metrics.ReplicateDuration), metrics.LatencyBuckets)
	cv := reg.NewCounterVec(metrics.ReplaceRecordsTotal, metrics.Help(metrics.ReplaceRecordsTotal),
		[]string{"result"}, [][]string{{"ok"}, {"error"}})
	s.m.copyOK, s.m.copyErr = cv.With("ok"), cv.With("error")
	reg.NewGaugeVecFunc(metrics.RequestIDs, metrics.Help(metrics.RequestIDs), []string{"kind"},
		func(emit func([]string, float64)) {
			n, c := s.dedup.sizes()
			emit([]string{"remembered"}, float64(n))
			emit([]string{"capacity"}, float64(c))
		})
	reg.NewGaugeFunc(metrics.StoreFull, metrics.Help(metrics.StoreFull), func() float64 {
		if s.diskFull.Load() {
			return 1
		}
		return 0
	})
	reg.NewGaugeFunc(metrics.ReplacePhase, metrics.Help(metrics.ReplacePhase), func() float64 {
		st := s.replState.Load()
		switch {
		case st&wire.ReplCopying != 0:
			return 1
		case st&wire.ReplDeleting != 0:
			return 2
		}
		return 0
	})
	reg.NewGaugeVecFunc(metrics.HashSpaceClock, metrics.Help(metrics.HashSpaceClock), []string{"space"},
		func(emit func([]string, float64)) {
			emit([]string{"whs"}, float64(clock.Seconds(s.whs.Load().Clock())))
			emit([]string{"rhs"}, float64(clock.Seconds(s.rhs.Load().Clock())))
		})
}

// since returns the time elapsed since t, for latency histograms.
func since(t time.Time) time.Duration { return time.Since(t) }
