package metrics

import (
	"runtime"
	"strings"
	"sync"
	"time"
)

// The names of kumo's metrics. The daemons register them with the help
// texts of Catalog; docs/operations.md explains each one.
const (
	// Every daemon (RegisterProcess).
	BuildInfo        = "kumo_build_info"
	StartTime        = "kumo_start_time_seconds"
	Goroutines       = "kumo_goroutines"
	HeapBytes        = "kumo_heap_bytes"
	Procs            = "kumo_procs"
	GCPauseTotal     = "kumo_gc_pause_seconds_total"
	RPCErrorsTotal   = "kumo_rpc_errors_total"
	RequestsTotal    = "kumo_requests_total"
	RequestDuration  = "kumo_request_duration_seconds"
	Connections      = "kumo_connections"
	ConnectionsTotal = "kumo_connections_total"

	// kumo-server.
	Items               = "kumo_items"
	StoreBuckets        = "kumo_store_buckets"
	StoreLoad           = "kumo_store_load"
	StoreLiveBytes      = "kumo_store_live_bytes"
	StoreDeadBytes      = "kumo_store_dead_bytes"
	StoreFileBytes      = "kumo_store_file_bytes"
	StoreFull           = "kumo_store_full"
	ReplicateTotal      = "kumo_replicate_total"
	DirectSetsTotal     = "kumo_direct_sets_total"
	ReplicateDuration   = "kumo_replicate_duration_seconds"
	ReplacePhase        = "kumo_replace_phase"
	RepairRecordsTotal  = "kumo_repair_records_total"
	ReplaceRecordsTotal = "kumo_replace_records_total"
	RequestIDs          = "kumo_request_ids"

	// kumo-manager.
	Servers           = "kumo_servers"
	Gateways          = "kumo_gateways"
	PartnerUp         = "kumo_partner_up"
	HashSpaceClock    = "kumo_hashspace_clock"
	ReplacePending    = "kumo_replace_pending_servers"
	ReplacesTotal     = "kumo_replaces_total"
	GatewayRetryTotal = "kumo_gateway_retries_total"
	GatewayRelayTotal = "kumo_gateway_relays_total"
)

// Desc describes one of kumo's metrics for documentation and registration.
type Desc struct {
	Name   string
	Type   string   // "counter", "gauge" or "histogram"
	Labels []string // label names, nil for none
	Roles  string   // which daemons expose it: "all", "server", "gateway", "manager", or a list
	Help   string   // the HELP text
}

// Catalog lists every metric kumo's daemons expose, sorted by name. Register
// with the Help given here so /metrics and docs/operations.md agree.
var Catalog = []Desc{
	{BuildInfo, "gauge", []string{"role", "version", "goversion"}, "all", "Always 1; the labels name the daemon, its version and the Go version."},
	{Connections, "gauge", []string{"kind"}, "server, gateway", "Connections open now (kind: memcache, rpc)."},
	{ConnectionsTotal, "counter", []string{"kind"}, "server, gateway", "Connections accepted since start (kind: memcache, rpc)."},
	{DirectSetsTotal, "counter", []string{"result"}, "server, gateway", "Plain sets a gateway sent to every owner of the key at once (gateway: sets, server: owner stores; result: stored, refused: sent again through the coordinator)."},
	{GatewayRelayTotal, "counter", nil, "gateway", "Writes the gateway sent through another owner because it could not reach the key's coordinator."},
	{GatewayRetryTotal, "counter", nil, "gateway", "Requests the gateway sent again to another owner or after refreshing the hash space."},
	{Gateways, "gauge", nil, "manager", "Gateways connected to this manager."},
	{GCPauseTotal, "counter", nil, "all", "Total time the Go garbage collector stopped the world, in seconds."},
	{Goroutines, "gauge", nil, "all", "Goroutines running now."},
	{HashSpaceClock, "gauge", []string{"space"}, "manager, server", "ClockTime of the hash space (space: whs, rhs), the seconds part; equal on every node once pushes settled."},
	{HeapBytes, "gauge", nil, "all", "Bytes of allocated heap objects (runtime.MemStats.HeapAlloc)."},
	{Items, "gauge", nil, "server", "Records in the store, tombstones included (kumostat items)."},
	{PartnerUp, "gauge", nil, "manager", "1 when the partner manager (-p) is connected and answered within the keepalive timeout, else 0."},
	{Procs, "gauge", nil, "all", "Ps the Go runtime runs goroutines on now (GOMAXPROCS)."},
	{RepairRecordsTotal, "counter", []string{"result"}, "server", "Records a server pushed to a key's other owners after the connection that had brought it a write of the key (a gateway's direct set, a coordinator's replication) closed (result: ok, error)."},
	{ReplacePending, "gauge", nil, "manager", "Servers that have not yet reported the end of the current replace phase (0 when no replace runs)."},
	{ReplacePhase, "gauge", nil, "server, manager", "Replace in progress: 0 none, 1 copy phase, 2 delete phase."},
	{ReplaceRecordsTotal, "counter", []string{"result"}, "server", "Records this server pushed to new owners during replace copy phases (result: ok, error)."},
	{ReplacesTotal, "counter", []string{"result"}, "manager", "Replaces this manager started and how they ended (result: started, finished, aborted)."},
	{ReplicateDuration, "histogram", nil, "server", "Time a coordinator waited for its replicas to store one write, in seconds."},
	{ReplicateTotal, "counter", []string{"result"}, "server", "Replications of a write to one replica (result: ok, retry, error)."},
	{RequestDuration, "histogram", []string{"cmd"}, "server, gateway", "Request latency by command, in seconds (gateway: client request to reply; server: RPC handling)."},
	{RequestIDs, "gauge", []string{"kind"}, "server", "Request ids of recent writes the server remembers, so that a retried write is not applied twice (kind: remembered, capacity)."},
	{RequestsTotal, "counter", []string{"cmd", "result"}, "server, gateway", "Requests by command and result (result: hit, miss, ok, not_stored, exists, not_found, error)."},
	{RPCErrorsTotal, "counter", []string{"kind"}, "all", "Failed cluster RPCs (kind: timeout, conn_lost, peer_down, remote)."},
	{Servers, "gauge", []string{"state"}, "manager", "Servers in the hash space by state (state: active, fault, not_attached)."},
	{StartTime, "gauge", nil, "all", "Unix time the daemon started, in seconds."},
	{StoreBuckets, "gauge", nil, "server", "Slots of the store's bucket array (the bucket number; changed by kumo-storetool optimize)."},
	{StoreDeadBytes, "gauge", nil, "server", "Log bytes no longer live (overwritten, deleted, expired), reclaimed by compaction."},
	{StoreFileBytes, "gauge", nil, "server", "Size of the store file in bytes."},
	{StoreFull, "gauge", nil, "server", "1 while the store's disk is full (the server reports itself fault until it has room), else 0."},
	{StoreLiveBytes, "gauge", nil, "server", "Log bytes of live records (tombstones included)."},
	{StoreLoad, "gauge", nil, "server", "Fraction of the bucket array's slots in use (records plus removed slots)."},
}

// Describe returns the Catalog entry for name, or ok false.
func Describe(name string) (d Desc, ok bool) {
	for _, d := range Catalog {
		if d.Name == name {
			return d, true
		}
	}
	return Desc{}, false
}

// Help returns the Catalog help text for name, for registering it. It
// panics for a name not in the catalog (a programmer error).
func Help(name string) string {
	d, ok := Describe(name)
	if !ok {
		panic("metrics: " + name + " is not in the catalog")
	}
	return d.Help
}

// RegisterProcess registers what every daemon exposes about itself:
// kumo_build_info, kumo_start_time_seconds, kumo_goroutines,
// kumo_heap_bytes and kumo_gc_pause_seconds_total. role is "server",
// "manager" or "gateway". The memory figures come from one
// runtime.ReadMemStats per scrape (cached for a second, since it stops the
// world briefly).
func RegisterProcess(r *Registry, role, version string, start time.Time) {
	r.NewGaugeVecFunc(BuildInfo, Help(BuildInfo), []string{"role", "version", "goversion"},
		func(emit func([]string, float64)) { emit([]string{role, version, runtime.Version()}, 1) })
	st := float64(start.UnixNano()) / 1e9
	r.NewGaugeFunc(StartTime, Help(StartTime), func() float64 { return st })
	r.NewGaugeFunc(Goroutines, Help(Goroutines), func() float64 { return float64(runtime.NumGoroutine()) })
	r.NewGaugeFunc(Procs, Help(Procs), func() float64 { return float64(runtime.GOMAXPROCS(0)) })
	ms := &memStats{}
	r.NewGaugeFunc(HeapBytes, Help(HeapBytes), func() float64 { return float64(ms.read().HeapAlloc) })
	r.NewCounterFunc(GCPauseTotal, Help(GCPauseTotal), func() float64 { return float64(ms.read().PauseTotalNs) / 1e9 })
}

// memStats caches runtime.ReadMemStats for a second.
type memStats struct {
	mu sync.Mutex // protects at, m
	at time.Time
	m  runtime.MemStats
}

func (s *memStats) read() runtime.MemStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.at) > time.Second {
		runtime.ReadMemStats(&s.m)
		s.at = now
	}
	return s.m
}

// Requests is the kumo_requests_total / kumo_request_duration_seconds pair
// for a fixed set of commands and results. Look the children up once at
// start-up (Counter, Latency) and keep them for the hot path.
type Requests struct {
	Total   *CounterVec
	Latency *HistogramVec
}

// NewRequests registers kumo_requests_total{cmd,result} with every
// combination of cmds × results, and kumo_request_duration_seconds{cmd}
// with LatencyBuckets.
func NewRequests(r *Registry, cmds, results []string) *Requests {
	var one [][]string
	for _, c := range cmds {
		one = append(one, []string{c})
	}
	return &Requests{
		Total:   r.NewCounterVec(RequestsTotal, Help(RequestsTotal), []string{"cmd", "result"}, Cross(cmds, results)),
		Latency: r.NewHistogramVec(RequestDuration, Help(RequestDuration), []string{"cmd"}, one, LatencyBuckets),
	}
}

// StoreFigures are the store statistics RegisterStore exposes; a server
// fills them from store.DB.Stats.
type StoreFigures struct {
	Records   uint64  // Stats.Records (live keys, tombstones included)
	Buckets   uint64  // Stats.Buckets
	Load      float64 // Stats.Load()
	LiveBytes uint64  // Stats.LiveBytes
	DeadBytes uint64  // Stats.DeadBytes
	FileBytes int64   // Stats.FileSize
}

// RegisterStore registers kumo_items and the kumo_store_* gauges, read
// from stats at scrape time. stats is called at most once a second (the
// figures are cached), so a scrape costs one call, not six. It must be
// safe for concurrent use.
func RegisterStore(r *Registry, stats func() StoreFigures) {
	c := &storeCache{stats: stats}
	r.NewGaugeFunc(Items, Help(Items), func() float64 { return float64(c.read().Records) })
	r.NewGaugeFunc(StoreBuckets, Help(StoreBuckets), func() float64 { return float64(c.read().Buckets) })
	r.NewGaugeFunc(StoreLoad, Help(StoreLoad), func() float64 { return c.read().Load })
	r.NewGaugeFunc(StoreLiveBytes, Help(StoreLiveBytes), func() float64 { return float64(c.read().LiveBytes) })
	r.NewGaugeFunc(StoreDeadBytes, Help(StoreDeadBytes), func() float64 { return float64(c.read().DeadBytes) })
	r.NewGaugeFunc(StoreFileBytes, Help(StoreFileBytes), func() float64 { return float64(c.read().FileBytes) })
}

// storeCache caches a StoreFigures for a second.
type storeCache struct {
	stats func() StoreFigures

	mu sync.Mutex // protects at, f
	at time.Time
	f  StoreFigures
}

func (c *storeCache) read() StoreFigures {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.at) > time.Second {
		c.f = c.stats()
		c.at = now
	}
	return c.f
}

// ForRole returns the names of the Catalog metrics that the daemon role
// ("server", "manager" or "gateway") exposes, for tests that scrape a
// daemon and check that nothing is missing.
func ForRole(role string) []string {
	var out []string
	for _, d := range Catalog {
		for _, r := range strings.Split(d.Roles, ",") {
			if r = strings.TrimSpace(r); r == "all" || r == role {
				out = append(out, d.Name)
				break
			}
		}
	}
	return out
}

// Missing returns the names (of families) that have no series in m, a
// ParseText result: a name is present when m holds the name itself, a
// labelled series of it, or its histogram _count.
func Missing(m map[string]float64, names []string) []string {
	have := make(map[string]bool, len(m))
	for k := range m {
		if i := strings.IndexByte(k, '{'); i >= 0 {
			k = k[:i]
		}
		have[k] = true
	}
	var out []string
	for _, n := range names {
		if !have[n] && !have[n+"_count"] {
			out = append(out, n)
		}
	}
	return out
}
