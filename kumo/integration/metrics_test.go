package integration

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"kumofs/internal/httpd"
	"kumofs/internal/localcluster"
	"kumofs/internal/metrics"
)

var httpLine = regexp.MustCompile(`http on (http://[0-9.:]+)`)

// httpURL finds the --http address a daemon logged.
func httpURL(t *testing.T, p *localcluster.Proc) string {
	t.Helper()
	if err := p.WaitLog("http on ", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m := httpLine.FindStringSubmatch(p.Tail(1000))
	if m == nil {
		t.Fatalf("%s: no http address in its log", p)
	}
	return m[1]
}

// Ensure that every daemon serves /metrics with the named series and real
// counts, /healthz, and the manager its status page.
func TestMetricsAndStatusPage(t *testing.T) {
	t.Parallel()
	h := []string{"--http", "127.0.0.1:0"}
	c := localcluster.StartT(t, localcluster.Options{ExtraManagerArgs: h, ExtraServerArgs: h, ExtraGatewayArgs: h})
	m := dial(t, c.Gateway())
	for _, k := range []string{"a", "b", "c"} {
		if r := m.set(k, "v"); r != "STORED\r\n" {
			t.Fatal(r)
		}
		if _, ok := m.get(k); !ok {
			t.Fatal("miss")
		}
	}
	m.get("nokey")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	scrape := func(p *localcluster.Proc) map[string]float64 {
		got, err := httpd.Scrape(ctx, httpURL(t, p)+"/metrics")
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return got
	}
	want := func(p *localcluster.Proc, got map[string]float64, series string, min float64) {
		t.Helper()
		v, ok := got[series]
		if !ok || v < min {
			t.Fatalf("%s: %s = %v (present %v), want >= %v", p, series, v, ok, min)
		}
	}
	complete := func(p *localcluster.Proc, role string, got map[string]float64) {
		t.Helper()
		if miss := metrics.Missing(got, metrics.ForRole(role)); len(miss) > 0 {
			t.Fatalf("%s: /metrics lacks %v", p, miss)
		}
	}
	g := scrape(c.GatewayProc())
	complete(c.GatewayProc(), "gateway", g)
	want(c.GatewayProc(), g, `kumo_connections{kind="memcache"}`, 1)
	want(c.GatewayProc(), g, `kumo_requests_total{cmd="store",result="ok"}`, 3)
	want(c.GatewayProc(), g, `kumo_requests_total{cmd="get",result="hit"}`, 3)
	want(c.GatewayProc(), g, `kumo_requests_total{cmd="get",result="miss"}`, 1)
	want(c.GatewayProc(), g, `kumo_request_duration_seconds_count{cmd="get"}`, 4)
	want(c.GatewayProc(), g, `kumo_goroutines`, 1)
	for i := 0; i < c.NumServers(); i++ {
		p := c.Server(i)
		s := scrape(p)
		complete(p, "server", s)
		want(p, s, `kumo_items`, 3)
		want(p, s, `kumo_store_buckets`, 1)
		want(p, s, `kumo_replace_phase`, 0)
		want(p, s, `kumo_request_ids{kind="capacity"}`, 65536)
		want(p, s, `kumo_hashspace_clock{space="whs"}`, 1)
		if s[`kumo_requests_total{cmd="write",result="ok"}`]+s[`kumo_requests_total{cmd="replicate",result="ok"}`]+
			s[`kumo_direct_sets_total{result="stored"}`] < 3 {
			t.Fatalf("%s: no writes counted", p)
		}
	}
	mg := scrape(c.ManagerProc(0))
	complete(c.ManagerProc(0), "manager", mg)
	want(c.ManagerProc(0), mg, `kumo_servers{state="active"}`, 3)
	want(c.ManagerProc(0), mg, `kumo_replaces_total{result="finished"}`, 1)
	want(c.ManagerProc(0), mg, `kumo_gateways`, 1)

	base := httpURL(t, c.ManagerProc(0))
	for _, path := range []string{"/healthz", "/"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if path == "/" {
			for i := 0; i < c.NumServers(); i++ {
				if !strings.Contains(string(body), c.Server(i).Addr) {
					t.Fatalf("status page does not list %s:\n%s", c.Server(i).Addr, body)
				}
			}
		}
	}
}
