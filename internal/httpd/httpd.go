// Package httpd is the small HTTP server behind every daemon's --http flag:
// /metrics in the Prometheus text format, /healthz, the net/http/pprof
// handlers under /debug/pprof/, and extra handlers a daemon adds (the
// manager's status page at /).
//
// It uses its own ServeMux, never http.DefaultServeMux, so importing
// net/http/pprof elsewhere does not change what it serves.
package httpd

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"kumofs/internal/metrics"
)

// ErrClosed is returned by Close for a Server closed before.
var ErrClosed = errors.New("httpd: server closed")

// Options are the optional parts of a Server.
type Options struct {
	// Health, when set, is called for each /healthz request; a non-nil
	// error makes /healthz answer 503 with the error's text.
	Health func() error
}

// Server is a running HTTP endpoint. Close stops it.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	logf func(string, ...any)
	done chan struct{} // closed when the serving goroutine returned

	mu     sync.Mutex // protects closed
	closed bool
}

// Start listens on addr (host:port; port 0 picks one) and serves
// /metrics from reg (a 404 when reg is nil), /healthz, /debug/pprof/ and
// the extra handlers, keyed by ServeMux pattern (e.g. "/" for the
// manager's status page; a pattern that collides with a built-in one
// panics, as ServeMux does). logf receives one line per serving error;
// nil discards them. The caller owns the Server and must Close it.
func Start(addr string, reg *metrics.Registry, extra map[string]http.Handler, logf func(string, ...any)) (*Server, error) {
	return StartOptions(addr, reg, extra, logf, Options{})
}

// StartOptions is Start with Options.
func StartOptions(addr string, reg *metrics.Registry, extra map[string]http.Handler, logf func(string, ...any), o Options) (*Server, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	s := &Server{ln: ln, logf: logf, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           NewMux(reg, extra, o),
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: /debug/pprof/profile and /trace stream for as
		// many seconds as asked.
		IdleTimeout: 2 * time.Minute,
		// net/http's own complaints (bad requests, panics in handlers) go
		// to logf too, as one line each.
		ErrorLog: log.New(logWriter(logf), "", 0),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("httpd: %v", err)
		}
	}()
	return s, nil
}

// logWriter turns each Write of a log.Logger into one logf line.
type logWriter func(string, ...any)

func (f logWriter) Write(p []byte) (int, error) {
	f("httpd: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns "http://ADDR", the base of the server's URLs.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops listening, closes open connections (a running profile is cut
// short) and waits for the serving goroutine.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	err := s.srv.Close()
	<-s.done
	return err
}

// NewMux returns the handler Start serves, for embedding elsewhere.
func NewMux(reg *metrics.Registry, extra map[string]http.Handler, o Options) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if reg == nil {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", metrics.ContentType)
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodHead {
			return
		}
		reg.WriteText(w) // an error here is the client going away
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if o.Health != nil {
			if err := o.Health(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "%s\n", err)
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// Register extra handlers in a fixed order so a collision panics the
	// same way every time.
	patterns := make([]string, 0, len(extra))
	for p := range extra {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	for _, p := range patterns {
		mux.Handle(p, extra[p])
	}
	return mux
}

// Scrape fetches url (a daemon's http://ADDR/metrics) and parses it with
// metrics.ParseText, for integration tests and tools. A status other than
// 200 is an error.
func Scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("httpd: %s: %s", url, resp.Status)
	}
	return metrics.ParseText(resp.Body)
}
