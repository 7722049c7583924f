package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/internal/metrics"
)

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestServer(t *testing.T) {
	reg := metrics.NewRegistry()
	req := metrics.NewRequests(reg, []string{"get"}, []string{"hit", "miss"})
	req.Total.With("get", "hit").Add(5)
	var healthErr atomic.Pointer[error]
	extra := map[string]http.Handler{
		"/{$}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "status page") }),
	}
	var logged atomic.Int32
	s, err := StartOptions("127.0.0.1:0", reg, extra, func(string, ...any) { logged.Add(1) },
		Options{Health: func() error {
			if p := healthErr.Load(); p != nil {
				return *p
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	code, h, body := get(t, s.URL()+"/metrics")
	if code != 200 || h.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("/metrics: %d %q", code, h.Get("Content-Type"))
	}
	m, err := metrics.ParseText(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if m[`kumo_requests_total{cmd="get",result="hit"}`] != 5 || m[`kumo_request_duration_seconds_count{cmd="get"}`] != 0 {
		t.Errorf("/metrics parsed to %v", m)
	}

	if code, _, body := get(t, s.URL()+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	e := errors.New("no hash space yet")
	healthErr.Store(&e)
	if code, _, body := get(t, s.URL()+"/healthz"); code != 503 || body != "no hash space yet\n" {
		t.Errorf("/healthz unhealthy: %d %q", code, body)
	}
	if code, _, body := get(t, s.URL()+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d", code)
	}
	if code, _, body := get(t, s.URL()+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("/debug/pprof/goroutine: %d", code)
	}
	if code, _, body := get(t, s.URL()+"/"); code != 200 || body != "status page" {
		t.Errorf("/: %d %q", code, body)
	}
	if code, _, _ := get(t, s.URL()+"/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
	resp, err := http.Post(s.URL()+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}

	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := http.Get(s.URL() + "/healthz"); err == nil {
		t.Error("still serving after Close")
	}
	if n := logged.Load(); n != 0 {
		t.Errorf("logged %d lines", n)
	}
}

func TestNoRegistry(t *testing.T) {
	s, err := Start("127.0.0.1:0", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if code, _, _ := get(t, s.URL()+"/metrics"); code != 404 {
		t.Errorf("/metrics without a registry: %d", code)
	}
	if code, _, body := get(t, s.URL()+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

func TestListenError(t *testing.T) {
	s, err := Start("127.0.0.1:0", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Start(s.Addr().String(), nil, nil, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "httpd: ") {
		t.Errorf("second listen on %s: %v", s.Addr(), err)
	}
}

// TestServerErrorLog checks that net/http's own error lines reach logf.
func TestServerErrorLog(t *testing.T) {
	lines := make(chan string, 4)
	extra := map[string]http.Handler{
		"/panic": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
	}
	s, err := Start("127.0.0.1:0", nil, extra, func(f string, a ...any) {
		select {
		case lines <- fmt.Sprintf(f, a...):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := http.Get(s.URL() + "/panic"); err == nil {
		t.Error("a panicking handler answered")
	}
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "httpd: http: panic serving") || strings.HasSuffix(l, "\n") {
			t.Errorf("logged %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Error("nothing logged")
	}
}

func TestScrape(t *testing.T) {
	reg := metrics.NewRegistry()
	reg.NewCounter("kumo_x_total", "x").Add(3)
	s, err := Start("127.0.0.1:0", reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	m, err := Scrape(ctx, s.URL()+"/metrics")
	if err != nil || len(m) != 1 || m["kumo_x_total"] != 3 {
		t.Errorf("Scrape = %v, %v", m, err)
	}
	if _, err := Scrape(ctx, s.URL()+"/nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Scrape of a 404: %v", err)
	}
	if _, err := Scrape(ctx, s.URL()+"/healthz"); err == nil {
		t.Error("Scrape of a non-metrics page parsed")
	}
}
