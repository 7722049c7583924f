package manager

import (
	"sort"
	"time"

	"kumofs/internal/metrics"
	"kumofs/internal/statuspage"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/ring"
)

// managerMetrics are the counters the manager updates.
type managerMetrics struct {
	started, finished, aborted *metrics.Counter
	rpcErrs                    *metrics.RPCErrors
}

func (m *Manager) registerMetrics(reg *metrics.Registry) {
	m.m.rpcErrs = metrics.NewRPCErrors(reg)
	reg.NewGaugeVecFunc(metrics.Servers, metrics.Help(metrics.Servers), []string{"state"},
		func(emit func([]string, float64)) {
			st := m.Status()
			n := map[string]float64{statuspage.StateActive: 0, statuspage.StateFault: 0, statuspage.StateNotAttached: 0}
			for _, s := range st.Servers {
				n[s.State]++
			}
			emit([]string{"active"}, n[statuspage.StateActive])
			emit([]string{"fault"}, n[statuspage.StateFault])
			emit([]string{"not_attached"}, n[statuspage.StateNotAttached])
		})
	reg.NewGaugeFunc(metrics.Gateways, metrics.Help(metrics.Gateways), func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return float64(len(m.gateways))
	})
	reg.NewGaugeFunc(metrics.PartnerUp, metrics.Help(metrics.PartnerUp), func() float64 {
		if m.partnerUp() {
			return 1
		}
		return 0
	})
	reg.NewGaugeFunc(metrics.ReplacePhase, metrics.Help(metrics.ReplacePhase), func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		switch r := m.replace; {
		case r == nil:
			return 0
		case r.deleting != nil:
			return 2
		}
		return 1
	})
	reg.NewGaugeFunc(metrics.ReplacePending, metrics.Help(metrics.ReplacePending), func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		if r := m.replace; r != nil {
			if r.deleting != nil {
				return float64(len(r.deleting))
			}
			return float64(len(r.copying))
		}
		return 0
	})
	rv := reg.NewCounterVec(metrics.ReplacesTotal, metrics.Help(metrics.ReplacesTotal), []string{"result"},
		[][]string{{"started"}, {"finished"}, {"aborted"}})
	m.m.started, m.m.finished, m.m.aborted = rv.With("started"), rv.With("finished"), rv.With("aborted")
	reg.NewGaugeVecFunc(metrics.HashSpaceClock, metrics.Help(metrics.HashSpaceClock), []string{"space"},
		func(emit func([]string, float64)) {
			w, r := m.seeds()
			emit([]string{"whs"}, float64(clock.Seconds(w.Clock())))
			emit([]string{"rhs"}, float64(clock.Seconds(r.Clock())))
		})
}

// partnerUp reports whether the partner manager is connected and answered
// within the keepalive timeout.
func (m *Manager) partnerUp() bool {
	if m.partner == nil {
		return false
	}
	c := m.partner.Conn()
	if c == nil {
		return false
	}
	select {
	case <-c.Done():
		return false
	default:
	}
	return time.Since(time.Unix(0, m.partnerSeen.Load())) <= m.cfg.KeepAliveTimeout
}

// Status describes the cluster for the status page: servers of the write
// hash space with their state, newcomers, the replace in progress and the
// gateways. Items and rates are filled in by the page's poller.
func (m *Manager) Status() statuspage.Status {
	m.mu.Lock()
	w := m.whs
	st := statuspage.Status{
		Manager:        m.cfg.Self.String(),
		Partner:        m.cfg.Partner,
		Version:        wire.Version,
		HashSpace:      clock.Time(w.Clock()),
		HashSpaceClock: clock.Counter(w.Clock()),
		AutoReplace:    m.autoReplace,
		Generated:      time.Now(),
	}
	listed := map[ring.Addr]bool{}
	for _, n := range w.Nodes() {
		state := statuspage.StateFault
		if n.Active {
			state = statuspage.StateActive
		}
		st.Servers = append(st.Servers, statuspage.Server{Addr: n.Addr.String(), State: state, Items: -1, GetRate: -1, SetRate: -1, DelRate: -1})
		listed[n.Addr] = true
	}
	for _, a := range m.newcomers {
		st.Servers = append(st.Servers, statuspage.Server{Addr: a.String(), State: statuspage.StateNotAttached, Items: -1, GetRate: -1, SetRate: -1, DelRate: -1})
	}
	if r := m.replace; r != nil {
		rep := &statuspage.Replace{Phase: "copy", Started: r.started}
		pending := r.copying
		if r.deleting != nil {
			rep.Phase, pending = "delete", r.deleting
		}
		for a := range pending {
			rep.Pending = append(rep.Pending, a.String())
		}
		sort.Strings(rep.Pending)
		rep.Total = len(w.Nodes())
		rep.Done = rep.Total - len(rep.Pending)
		st.Replace = rep
	}
	for c := range m.gateways {
		st.Gateways = append(st.Gateways, c.RemoteAddr().String())
	}
	m.mu.Unlock()
	sort.Strings(st.Gateways)
	st.PartnerUp = m.partnerUp()
	return st
}
