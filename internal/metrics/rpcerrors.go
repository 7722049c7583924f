package metrics

// RPCErrorKinds are the kind label values of kumo_rpc_errors_total (the
// strings proto/rpc.ErrorKind returns).
var RPCErrorKinds = []string{"timeout", "conn_lost", "peer_down", "closed", "remote", "other"}

// RPCErrors counts failed cluster RPCs by kind.
type RPCErrors struct {
	by map[string]*Counter // fixed at registration; read-only afterwards
}

// NewRPCErrors registers kumo_rpc_errors_total{kind}.
func NewRPCErrors(r *Registry) *RPCErrors {
	vals := make([][]string, len(RPCErrorKinds))
	for i, k := range RPCErrorKinds {
		vals[i] = []string{k}
	}
	v := r.NewCounterVec(RPCErrorsTotal, Help(RPCErrorsTotal), []string{"kind"}, vals)
	e := &RPCErrors{by: make(map[string]*Counter, len(RPCErrorKinds))}
	for _, k := range RPCErrorKinds {
		e.by[k] = v.With(k)
	}
	return e
}

// Count adds one error of kind (unknown kinds count as "other").
func (e *RPCErrors) Count(kind string) {
	c := e.by[kind]
	if c == nil {
		c = e.by["other"]
	}
	c.Inc()
}
