package statuspage

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// SampleStatus is a cluster in the middle of a replace: four servers, one
// fault, one newly attached, two gateways.
func sampleStatus() Status {
	t0 := time.Date(2026, 11, 25, 17, 44, 50, 0, time.UTC)
	return Status{
		Manager:        "10.0.0.1:19700",
		Partner:        "10.0.0.2:19700",
		PartnerUp:      true,
		Version:        "0.1.0",
		HashSpace:      t0,
		HashSpaceClock: 11,
		AutoReplace:    false,
		Servers: []Server{
			{Addr: "10.0.1.1:19800", State: StateActive, Items: 1234567, GetRate: 1520.4, SetRate: 310, DelRate: 2.25, Replace: "Copying"},
			{Addr: "10.0.1.2:19800", State: StateActive, Items: 1233001, GetRate: 1499, SetRate: 305.5, DelRate: 0, Replace: "ready"},
			{Addr: "10.0.1.3:19800", State: StateFault, Items: -1, GetRate: -1, SetRate: -1, DelRate: -1},
			{Addr: "10.0.1.4:19800", State: StateActive, Items: 402, GetRate: 0, SetRate: 88, DelRate: 0, Replace: "Copying"},
		},
		Replace: &Replace{
			Phase:   "copy",
			Started: t0.Add(3 * time.Second),
			Pending: []string{"10.0.1.1:19800", "10.0.1.4:19800"},
			Done:    1,
			Total:   3,
		},
		Gateways:  []string{"10.0.2.1:40112", "10.0.2.2:51034"},
		Generated: t0.Add(45 * time.Second),
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n%s", name, got)
	}
}

func TestRenderGolden(t *testing.T) {
	empty := Status{Manager: "127.0.0.1:19700", Generated: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		name string
		st   Status
	}{
		{"replacing.golden", sampleStatus()},
		{"empty.golden", empty},
	} {
		var buf bytes.Buffer
		if err := Render(&buf, tc.st); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, tc.name, buf.Bytes())
	}
}

func TestRenderContent(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, sampleStatus()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`<meta http-equiv="refresh" content="2">`,
		`2026-11-25 17:44:50 UTC clock 11`,
		`<td class="addr">10.0.1.3:19800</td>`,
		`<span class="badge fault">fault</span>`,
		`1,234,567`, `1520`, `306`, `2.2`,
		`<progress max="3" value="1"></progress> 1 of 3 servers (33%)`,
		`10.0.1.1:19800, 10.0.1.4:19800`,
		`(42s ago)`,
		`<li class="gateway addr">10.0.2.2:51034</li>`,
		`3 active · 1 fault · 0 not attached · 2 gateways`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(out, "<script") {
		t.Error("page has a script")
	}
	if n := strings.Count(out, `<tr class="server">`); n != 4 {
		t.Errorf("%d server rows, want 4", n)
	}
}

func TestRenderEscapes(t *testing.T) {
	st := Status{Manager: "<b>m</b>", Servers: []Server{{Addr: `<script>alert(1)</script>`, State: `"><x`}}, Gateways: []string{"&g"}}
	var buf bytes.Buffer
	if err := Render(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "<script>") || strings.Contains(out, "<b>m</b>") || strings.Contains(out, `"><x`) {
		t.Errorf("not escaped:\n%s", out)
	}
	if !strings.Contains(out, "&lt;script&gt;") || !strings.Contains(out, "&amp;g") {
		t.Error("escaped forms missing")
	}
}

func TestHandler(t *testing.T) {
	calls := 0
	h := Handler(func() Status { calls++; return sampleStatus() })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var want bytes.Buffer
	Render(&want, sampleStatus())
	if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
		t.Error("GET body differs from Render")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("HEAD", "/", nil))
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
	if calls != 2 {
		t.Errorf("status called %d times, want 2", calls)
	}
}

func TestSort(t *testing.T) {
	s := []Server{
		{Addr: "a:1", State: StateNotAttached},
		{Addr: "b:1", State: StateActive},
		{Addr: "c:1", State: StateFault},
		{Addr: "d:1", State: StateNotAttached},
	}
	Sort(s)
	var got []string
	for _, x := range s {
		got = append(got, x.Addr)
	}
	if strings.Join(got, " ") != "c:1 b:1 d:1 a:1" {
		t.Errorf("Sort = %v", got)
	}
}

func TestRates(t *testing.T) {
	var r Rates
	t0 := time.Unix(1000, 0)
	type obs struct {
		at            time.Time
		get, set, del uint64
		want          [3]float64
	}
	for i, o := range []obs{
		{t0, 100, 10, 1, [3]float64{-1, -1, -1}},                      // first
		{t0.Add(2 * time.Second), 300, 30, 1, [3]float64{100, 10, 0}}, // 2 s later
		{t0.Add(2 * time.Second), 400, 30, 1, [3]float64{-1, -1, -1}}, // no time passed
		{t0.Add(3 * time.Second), 5, 0, 0, [3]float64{-1, -1, -1}},    // restarted
		{t0.Add(3500 * time.Millisecond), 10, 1, 0, [3]float64{10, 2, 0}},
		{t0.Add(3500*time.Millisecond + MaxRateAge + 1), 20, 1, 0, [3]float64{-1, -1, -1}}, // too long ago
		{t0.Add(3500*time.Millisecond + MaxRateAge + 1 + time.Second), 25, 1, 0, [3]float64{5, 0, 0}},
	} {
		g, s, d := r.Observe("s1", o.at, o.get, o.set, o.del)
		if [3]float64{g, s, d} != o.want {
			t.Errorf("step %d: %v %v %v, want %v", i, g, s, d, o.want)
		}
	}
	r.Observe("s2", t0, 1, 1, 1)
	r.Forget([]string{"s2"})
	if g, _, _ := r.Observe("s1", t0.Add(15*time.Second), 30, 1, 0); g != -1 {
		t.Errorf("forgotten server has rate %v", g)
	}
	if g, _, _ := r.Observe("s2", t0.Add(time.Second), 11, 1, 1); g != 10 {
		t.Errorf("kept server: %v", g)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{formatItems(0), "0"}, {formatItems(999), "999"}, {formatItems(1000), "1,000"},
		{formatItems(-1), "—"}, {formatItems(12345678), "12,345,678"},
		{formatRate(-1), "—"}, {formatRate(0), "0.0"}, {formatRate(9.96), "10.0"}, {formatRate(10.5), "10"},
		{formatTime(time.Time{}), "—"},
		{formatSince(time.Unix(10, 0), time.Unix(5, 0)), "0s"},
		{formatSince(time.Unix(10, 0), time.Unix(75, 900)), "1m5s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if percent(5, 0) != 0 || percent(4, 3) != 100 || percent(1, 3) != 33 {
		t.Error("percent")
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestRenderWriteError(t *testing.T) {
	if err := Render(failWriter{}, sampleStatus()); err != io.ErrClosedPipe {
		t.Errorf("Render to a failing writer: %v", err)
	}
}
