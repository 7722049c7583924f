// Package statuspage renders the manager's status page: an HTML page,
// built on the server with html/template and no JavaScript, showing the
// cluster's servers with their state, items and request rates, the hash
// space timestamp, a replace in progress and the connected gateways. The
// page refreshes itself every 2 seconds with a meta refresh.
//
// The manager fills a Status and serves it with Handler at "/" of its
// --http address. It knows the servers' addresses and states, the hash
// space, the replace and the gateways; a Poller fills in each active
// server's items, request rates and replace state by asking the server
// (kumostat's GetStatus queries) and differencing its counters (Rates).
package statuspage

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Server states as the page shows them, matching kumoctl status.
const (
	StateActive      = "active"
	StateFault       = "fault"
	StateNotAttached = "not attached"
)

// Status is everything the page shows. The manager fills it for each
// request; zero fields are shown as "—" or left out.
type Status struct {
	Manager   string // this manager's address
	Partner   string // the partner manager's address, "" without -p
	PartnerUp bool   // the partner is connected
	Version   string // kumo version, shown in the footer

	HashSpace      time.Time // the hash space timestamp (seconds part of its ClockTime)
	HashSpaceClock uint32    // its counter part, as kumoctl status prints it
	AutoReplace    bool      // -a / enable-auto-replace

	Servers  []Server // in the order to show (Sort orders them like kumoctl)
	Replace  *Replace // nil when no replace runs
	Gateways []string // addresses of the connected gateways

	Generated time.Time // when the Status was taken
}

// Server is one row of the servers table.
type Server struct {
	Addr    string
	State   string  // StateActive, StateFault or StateNotAttached
	Items   int64   // records in its store; -1 if unknown (it did not answer)
	GetRate float64 // gets per second; negative if unknown
	SetRate float64 // sets per second; negative if unknown
	DelRate float64 // deletes per second; negative if unknown
	Replace string  // replace state as kumostat replstat prints it ("ready", "Copying", "Deleting", "WAIT", "inactive"); "" if unknown
}

// Replace describes a replace in progress.
type Replace struct {
	Phase   string    // "copy" or "delete"
	Started time.Time // when the phase began
	Pending []string  // servers that have not reported the end of the phase
	Done    int       // servers that have reported it
	Total   int       // servers taking part
}

// Sort orders servers as kumoctl status does: attached servers first, by
// address descending, then the not-attached ones.
func Sort(s []Server) {
	sort.SliceStable(s, func(i, j int) bool {
		ai, aj := s[i].State != StateNotAttached, s[j].State != StateNotAttached
		if ai != aj {
			return ai
		}
		return s[i].Addr > s[j].Addr
	})
}

//go:embed page.html
var files embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"rate":     formatRate,
	"items":    formatItems,
	"ts":       formatTime,
	"since":    formatSince,
	"percent":  percent,
	"stateCSS": stateClass,
	"counts":   counts,
}).ParseFS(files, "page.html"))

// Render writes the page for st to w. It renders into a buffer first, so
// nothing is written when the template fails.
func Render(w io.Writer, st Status) error {
	var buf bytes.Buffer
	if err := page.Execute(&buf, st); err != nil {
		return fmt.Errorf("statuspage: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Handler serves the page at its pattern, calling status for each
// request. Only GET and HEAD are allowed.
func Handler(status func() Status) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var buf bytes.Buffer
		if err := Render(&buf, status()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		if r.Method == http.MethodGet {
			w.Write(buf.Bytes())
		}
	})
}

func formatRate(v float64) string {
	if v < 0 {
		return "—"
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func formatItems(n int64) string {
	if n < 0 {
		return "—"
	}
	// Thousands separators for readability.
	s := strconv.FormatInt(n, 10)
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// formatSince is the time from t to now, in whole seconds.
func formatSince(t, now time.Time) string {
	if t.IsZero() || now.IsZero() {
		return "—"
	}
	d := now.Sub(t).Truncate(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

func percent(done, total int) int {
	if total <= 0 {
		return 0
	}
	if done > total {
		done = total
	}
	return done * 100 / total
}

func stateClass(state string) string {
	switch state {
	case StateActive:
		return "active"
	case StateFault:
		return "fault"
	}
	return "detached"
}

// counts returns how many servers are in each state, for the summary line.
func counts(s []Server) map[string]int {
	m := map[string]int{StateActive: 0, StateFault: 0, StateNotAttached: 0}
	for _, x := range s {
		m[x.State]++
	}
	return m
}

// Rates turns successive polls of each server's cumulative counters
// (cmd_get, cmd_set, cmd_delete as kumostat reports them) into per-second
// rates. It is safe for concurrent use.
type Rates struct {
	mu   sync.Mutex // protects last
	last map[string]sample
}

type sample struct {
	at            time.Time
	get, set, del uint64
}

// MaxRateAge is the longest interval Rates averages over: an observation
// more than this after the previous one of the same server gives unknown
// rates rather than an average over a long unwatched time (the page
// refreshes every 2 s, so the second view of it shows rates).
const MaxRateAge = 10 * time.Second

// Observe records the counters of addr at time at and returns the rates
// since the previous observation of addr. The first observation, one at
// the same or an earlier time or more than MaxRateAge later, and one whose
// counters went down (the server restarted) return -1 for each rate
// (unknown).
func (r *Rates) Observe(addr string, at time.Time, get, set, del uint64) (getRate, setRate, delRate float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = make(map[string]sample)
	}
	prev, ok := r.last[addr]
	r.last[addr] = sample{at, get, set, del}
	dt := at.Sub(prev.at).Seconds()
	if !ok || dt <= 0 || dt > MaxRateAge.Seconds() || get < prev.get || set < prev.set || del < prev.del {
		return -1, -1, -1
	}
	return float64(get-prev.get) / dt, float64(set-prev.set) / dt, float64(del-prev.del) / dt
}

// Forget drops the servers not in keep, so removed servers do not
// accumulate.
func (r *Rates) Forget(keep []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := make(map[string]bool, len(keep))
	for _, a := range keep {
		k[a] = true
	}
	for a := range r.last {
		if !k[a] {
			delete(r.last, a)
		}
	}
}
