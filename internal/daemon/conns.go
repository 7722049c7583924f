package daemon

import "fmt"

// connReserve is the descriptors a daemon keeps for itself beyond its
// client connections: listeners, its connections to managers and servers,
// the store, log and pid files, the event loops' pollers.
const connReserve = 64

// FitConns returns the connection cap to use for a wish of want (0 =
// unlimited) when share of the descriptors the process may open are for
// those connections (1 for a gateway's clients; less where another
// listener competes for them), and a note for the log, naming the cap
// what, when it had to lower it. A cap over what
// the process may open would let idle clients take every descriptor and
// lock the daemon out of its servers and managers (hunt 27b: a gateway
// under ulimit -n 256 answered every set "peer down" while 600 clients
// sat idle); memcached in that case refuses to start.
func FitConns(what string, want int, share float64) (int, string) {
	limit, ok := fileLimit()
	if !ok {
		return want, ""
	}
	return fitConns(what, want, share, limit)
}

func fitConns(what string, want int, share float64, limit uint64) (int, string) {
	room := int(float64(int64(limit)-connReserve) * share)
	if limit > 1<<30 || (want != 0 && want <= room) {
		return want, ""
	}
	fit := max(room, 1)
	w := fmt.Sprint(want)
	if want == 0 {
		w = "0 (unlimited)"
	}
	return fit, fmt.Sprintf("%s %s lowered to %d: the process may open only %d files (ulimit -n)", what, w, fit, limit)
}
