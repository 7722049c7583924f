// Package wire defines what kumo daemons say to each other: the method numbers
// of kumofs 0.4.13 (so kumofs's tools keep working against kumo daemons), kumo's
// own methods in number ranges kumofs never used, the node roles of the
// cluster hello, and the record encodings DBKey and DBValue.
//
// Parameters are msgpack arrays in the order documented at each method. A
// decoder needs the documented fields and ignores extra trailing ones, as in
// kumofs.
package wire

// Roles sent in the cluster hello [2, addr, role].
const (
	RoleManager = 0
	RoleServer  = 1
)

// Methods served by kumo-manager.
const (
	MgrKeepAlive          = 0   // [clock, incarnation?, health?] -> [whs_clock, rhs_clock, clock] (kumofs: nil)
	MgrHashSpaceRequest   = 1   // [] -> [wseed, rseed]
	MgrHashSpaceSync      = 2   // [wseed, rseed, clock] -> [adopted, auto_replace] (partner only; older managers: true | nil)
	MgrWHashSpaceRequest  = 4   // [] -> wseed
	MgrRHashSpaceRequest  = 5   // [] -> rseed
	MgrReplaceCopyEnd     = 10  // [replace_time, clock, ok?] -> true
	MgrReplaceDeleteEnd   = 11  // [replace_time, clock] -> true
	MgrReplaceElection    = 12  // [wseed, clock] -> true | nil
	MgrIncarnation        = 13  // [addr_raw] -> [accepted_incarnation, wseed, rseed] (partner only)
	MgrServerHeard        = 14  // [addr_raw] -> bool: the server's keepalives reach this manager (partner only)
	MgrGetNodesInfo       = 99  // [] -> [wseed, [addr_raw...]]
	MgrAttachNewServers   = 100 // [replace bool] -> nil
	MgrDetachFaultServers = 101 // [replace bool] -> nil
	MgrCreateBackup       = 102 // [suffix] -> nil
	MgrSetAutoReplace     = 103 // [enable bool] -> new value | nil
	MgrStartReplace       = 104 // [full bool = false] -> nil
)

// Methods served by kumo-server.
const (
	SrvKeepAlive          = 0  // [clock] -> nil
	SrvHashSpaceSync      = 2  // [wseed, rseed, clock] -> true | nil
	SrvReplaceCopyStart   = 8  // [wseed, clock, full bool = false] -> true
	SrvReplaceDeleteStart = 9  // [wseed, clock] -> true
	SrvReplaceOffer       = 16 // [stream_addr_raw] (kumofs stream; unused by kumo)
	SrvReplicateSet       = 32 // [clock, flags, DBKey, DBValue, (whs_clock, (dedup))] -> bool stored | newer clocktime
	SrvReplicateDelete    = 33 // [clock, flags, delete_clocktime, DBKey] -> bool deleted
	SrvGet                = 34 // [DBKey] -> DBValue | nil
	SrvSet                = 35 // [op, DBKey, DBValue] -> clocktime | false (cas failed) | nil
	SrvDelete             = 36 // [flags, DBKey] -> true | false
	SrvGetIfModified      = 37 // [DBKey, if_time] -> true | DBValue | nil
	SrvCreateBackup       = 96 // [suffix] -> true
	SrvGetStatus          = 97 // [code] -> value
	SrvSetConfig          = 98 // [code, arg] -> count

	// kumo extensions: numbers kumofs never used.

	// SrvStore decides a memcached storage command atomically on the
	// coordinator. [mode, DBKey, DBValue, cas, (request_id, limit)] ->
	// [status, clocktime]. DBValue's clocktime is the gateway's clock, which
	// the coordinator merges like any peer clock (0: none), so that its
	// stamp beats every direct set (SrvSetDirect) that gateway sent. A non-zero limit (the gateway's -I) refuses an
	// append or prepend whose result memcached would not fit in it
	// (StatusNotStored, as memcached; ItemSize counts). Flags/exptime ride
	// in DBValue's meta. A non-zero request_id (appends and prepends) makes a
	// repeated request answered with the first one's outcome instead of
	// applied again: the coordinator remembers recent ids and sends them to
	// the replicas as SrvReplicateSet's last parameter, [request_id, value,
	// created, old_exptime], so the next coordinator knows them too.
	SrvStore = 64

	// ItemOverhead and ItemFlagsOverhead are what memcached 1.6 counts
	// against its item size limit besides key and value (see SrvStore).
	ItemOverhead      = 48 + 1 + 2 + 8
	ItemFlagsOverhead = 4
	// SrvArith is incr/decr. [DBKey, delta, decr bool, create bool,
	// initial, exptime, (cas, touch bool, new_exptime)] -> [status, value,
	// clocktime, created bool, old_exptime]. The optional trailing
	// params (memcached's ma C and T) make the update of an existing item
	// conditional on its clocktime (cas != 0: StatusExists) and set its
	// exptime (touch); a created item gets exptime. created and
	// old_exptime (the item's exptime before) are absent in replies of
	// servers older than these fields, which also ignore them: upgrade
	// servers before gateways. A tenth param, request_id, deduplicates as
	// SrvStore's does.
	SrvArith = 65
	// SrvTouch updates the exptime and optionally returns the value (gat).
	// [DBKey, exptime, want_value bool] -> [status, DBValue | nil].
	SrvTouch = 66
	// SrvRemove is a delete with an optional CAS compare. [DBKey, cas,
	// (request_id)] -> [status, clocktime]; a request id makes a retry
	// answered with the first outcome, as for SrvStore.
	// [DBKey, cas] -> [status, clocktime].
	SrvRemove = 67
	// SrvFlush tombstones every record older than the given clocktime, at
	// that time. [at_unix_seconds, clock] -> true.
	SrvFlush = 68
	// SrvReplicateBatch applies records with newest-clock-wins, for
	// rebalancing. [clock, [[DBKey, DBValue]...]] -> number applied.
	SrvReplicateBatch = 69
	// SrvGetRaw returns the stored record whatever it is: a value, a
	// tombstone (8-byte DBValue) or nil, without checking ownership. For
	// coordinators catching up during a rebalance, and for checks.
	// [DBKey] -> DBValue | nil. [DBKey, true] -> [DBValue, dedup | nil] |
	// nil: with the request id and outcome of the write that made the
	// version, if the server remembers it (an older server ignores the
	// flag and answers the DBValue alone).
	SrvGetRaw = 70
	// SrvHashSpaceRequest returns the server's hash spaces, as
	// MgrHashSpaceRequest does. Gateways and servers that cannot reach
	// any manager ask servers, so that they still learn a newer space
	// (and stop reading from a server the managers marked fault).
	// [] -> [wseed, rseed].
	SrvHashSpaceRequest = 71
	// SrvRelay forwards a write to the key's coordinator, for a gateway
	// that cannot reach the coordinator itself (a partition between the
	// two) but reaches another owner of the key. The relaying server picks
	// the coordinator by its own write hash space; the coordinator checks
	// and fences as always. The reply is the coordinator's, verbatim.
	// [write_method, hash, [params...]] -> the method's result.
	SrvRelay = 72
	// SrvGetMulti reads several keys with one message, for the keys of a
	// multi-key get that have the same first owner. [[DBKey...]] ->
	// [entry...], one entry per key in order: DBValue (a visible value),
	// nil (a miss) or a uint code: GetMultiElsewhere (not answered here:
	// this server does not serve reads of the key now, or the reply grew
	// past GetMultiBudget bytes; read it with SrvGet) or GetMultiFailed (the
	// store failed). At most MaxGetMulti keys. A server older than this
	// method answers CodeProtocol; gateways then read key by key.
	SrvGetMulti = 73
	// SrvLease changes the lease state of a value, for memcached's meta
	// commands: [DBKey, op, cas, touch bool, exptime, (request_id)] ->
	// [status, clocktime, token_out]; request_id as SrvStore's. LeaseWin
	// hands out the win token of the value whose clocktime is cas
	// (StatusExists if the value changed or its token is already out: then
	// clocktime and token_out describe the version it lost to; servers
	// before token_out answer [status, 0]); LeaseInvalidate marks the value stale and takes its
	// token back (md I), with a compare if cas != 0 and a new exptime if
	// touch. The value is re-stamped and replicated like any write.
	SrvLease = 74
	// SrvGetAccess is SrvGet for memcached's mg h and l flags: [DBKey,
	// bump bool] -> [DBValue | nil, fetched bool, last_access]. fetched
	// says whether this version was read before, last_access (unix
	// seconds) when it was last read, or else written; both as of before
	// this read, which they then count unless bump is false (mg u). The
	// answering server keeps them in memory only (see the server's access
	// table): approximate, and per server.
	SrvGetAccess = 75
	// SrvSetDirect is a plain memcached set that a gateway stamps itself
	// and sends to every owner of the key at once, instead of to the
	// coordinator that would stamp it and replicate it: one round trip,
	// no server-to-server messages. [clock, DBKey, DBValue, whs_clock] ->
	// [stored bool, clocktime]. clock is the gateway's clock and also
	// DBValue's clocktime. An owner stores the value only if nothing
	// could order it differently there than on the other owners: its
	// write and read hash spaces both have clock whs_clock (no rebalance
	// under way, none begun while storing), it is an active owner of the
	// key, the stamp is strictly newer than the version it keeps, not
	// before its flush point and not too far ahead of its wall clock.
	// Otherwise it stores nothing and answers false; the gateway then
	// sends the set again through the coordinator (SrvStore), which
	// re-stamps it above every version the owners keep. clocktime is the
	// owner's clock, which the gateway merges so that its next stamps
	// follow. An error is answered only for malformed params or a store
	// failure.
	SrvSetDirect = 76
)

// SrvLease operations.
const (
	LeaseWin        = 1
	LeaseInvalidate = 2
)

// SrvGetMulti's per-key codes and limit.
const (
	GetMultiElsewhere = 1
	GetMultiFailed    = 2
	MaxGetMulti       = 256
	GetMultiBudget    = 8 << 20 // reply bytes after which values are not added
)

// Methods served by kumo-gateway (the manager pushes to gateways).
const (
	GwHashSpacePush = 3 // [wseed, rseed] -> true
)

// Set operation codes of SrvSet (kumofs) and modes of SrvStore (kumo).
const (
	OpSet      = 0
	OpSetAsync = 1
	OpCAS      = 2
	OpAppend   = 4
	OpPrepend  = 8
	OpAdd      = 16
	OpReplace  = 32
)

// Status codes in the results of kumo's extension methods.
const (
	StatusOK         = 0 // stored / deleted / touched
	StatusNotStored  = 1
	StatusExists     = 2 // CAS mismatch
	StatusNotFound   = 3
	StatusNonNumeric = 4
)

// GetStatus codes (kumostat).
const (
	StatPID          = 0
	StatUptime       = 1
	StatTime         = 2
	StatVersion      = 3
	StatCmdGet       = 4
	StatCmdSet       = 5
	StatCmdDelete    = 6
	StatDBItems      = 7
	StatClockTime    = 8
	StatRHS          = 9
	StatWHS          = 10
	StatReplace      = 11
	StatDBBytes      = 64 // kumo: bytes of the live records that are not tombstones
	StatDBDeadSize   = 65 // kumo: dead bytes awaiting compaction
	StatStreamPort   = 66 // kumo: the replace stream port (-L), 0 if none
	StatDBLive       = 67 // kumo: records in the store that are not tombstones
	StatCopyTime     = 68 // kumo: the write space clock of the last replace copy started, 0 if none
	StatCurrentSince = 69 // kumo: unix ns since when the store has been current without a break longer than -gX, 0 if none
	StatCurrentUntil = 70 // kumo: unix ns until when the store was current: now if it is, else when its break began
)

// Health a server reports in its keepalives.
const (
	HealthOK       = 0
	HealthDiskFull = 1 // its store cannot take writes: treat it as fault
	HealthCorrupt  = 2 // its store holds damaged data: fault until repaired and restarted
)

// Replace state bits of StatReplace (kumostat replstat).
const (
	ReplInactive = 0x01
	ReplWait     = 0x02
	ReplCopying  = 0x04
	ReplDeleting = 0x08
)

// Error messages a server answers with; gateways react to them by fetching
// the hash space again and retrying.
const (
	MsgObsolete = "obsolete hash space"
	MsgNotReady = "server not ready"
	// MsgReplication: the coordinator stored the write but a replica
	// stayed unreachable; the write may be visible.
	MsgReplication = "replication failed"
	// MsgRelayDown: a relaying server could not reach the coordinator
	// either; the write was not sent.
	MsgRelayDown = "relay: coordinator unreachable"
	// MsgRelayLost: a relaying server sent the write but got no answer;
	// it may have taken effect.
	MsgRelayLost = "relay: no answer from the coordinator"
	// MsgDiskFull: the coordinator's store has no room for the write. It
	// reports itself to the managers, which mark it fault: a retry a
	// moment later goes to another owner.
	MsgDiskFull = "store: no space left on device"
)

// Version is the kumo release these daemons report.
const Version = "0.1.0"
