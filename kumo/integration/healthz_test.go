package integration

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// healthz returns the status code and body of p's /healthz, from the
// newest --http address in its log (a restart picks another port).
func healthz(t *testing.T, p *localcluster.Proc) (int, string) {
	t.Helper()
	if err := p.WaitLog("http on ", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	all := httpLine.FindAllStringSubmatch(p.Tail(4000), -1)
	if all == nil {
		t.Fatalf("%s: no http address in its log", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", all[len(all)-1][1]+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Ensure that /healthz answers 503 with the reason while a server does
// not serve its keys (added but not attached, restarted and so fault) and
// 200 once it is attached; the gateway's while it has no active server.
func TestHealthz(t *testing.T) {
	t.Parallel()
	h := []string{"--http", "127.0.0.1:0"}
	c := localcluster.StartT(t, localcluster.Options{Servers: 2, ExtraManagerArgs: h, ExtraServerArgs: h, ExtraGatewayArgs: h})
	is := func(p *localcluster.Proc, code int, body string) {
		t.Helper()
		var gc int
		var gb string
		eventually(t, 15*time.Second, p.Name+" /healthz", func() bool {
			gc, gb = healthz(t, p)
			return gc == code && gb == body
		}, func() string { return gb })
	}
	for _, p := range []*localcluster.Proc{c.GatewayProc(), c.Server(0), c.Server(1), c.ManagerProc(0)} {
		is(p, 200, "ok\n")
	}

	p, err := c.AddServer()
	if err != nil {
		t.Fatal(err)
	}
	is(p, 503, "server: not attached (run kumoctl MANAGER attach)\n")
	if _, err := c.Ctl("attach"); err != nil {
		t.Fatal(err)
	}
	is(p, 200, "ok\n")

	if err := c.RestartServer(1); err != nil {
		t.Fatal(err)
	}
	is(c.Server(1), 503, "server: marked fault (run kumoctl MANAGER attach to bring it back)\n")
	if _, err := c.Ctl("attach"); err != nil {
		t.Fatal(err)
	}
	is(c.Server(1), 200, "ok\n")

	// Every server down: the gateway keeps its space, with nobody active
	// once the manager marks them fault.
	for i := range c.NumServers() {
		if err := c.KillServer(i); err != nil {
			t.Fatal(err)
		}
	}
	is(c.GatewayProc(), 503, "gateway: no active server in the hash space\n")
	is(c.ManagerProc(0), 200, "ok\n")
}
