package statuspage

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kumofs/internal/httpd"
	"kumofs/internal/metrics"
)

// TestStatusPageChromium serves the page with sample data on 127.0.0.1
// (through httpd, as the manager does) and
// renders it in headless Chromium: the screenshot must be a 1280×800 PNG
// that is not blank, and the DOM Chromium built must hold the server rows.
// It runs only with KUMO_UI_TEST=1 (scripts/test-ui.sh installs Chromium
// and sets it); KUMO_UI_SHOT=PATH keeps a copy of the screenshot.
func TestStatusPageChromium(t *testing.T) {
	if os.Getenv("KUMO_UI_TEST") != "1" {
		t.Skip("set KUMO_UI_TEST=1 (scripts/test-ui.sh) to render the page in headless Chromium")
	}
	bin := findChromium(t)

	// Served the way the manager serves it: httpd with the page at "/".
	srv, err := httpd.Start("127.0.0.1:0", metrics.NewRegistry(), map[string]http.Handler{"/{$}": Handler(sampleStatus)}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := srv.URL() + "/"

	dir := t.TempDir()
	shot := filepath.Join(dir, "status.png")
	common := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
	}

	out := runChromium(t, bin, append(common, "--screenshot="+shot, "--window-size=1280,800", url)...)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\nchromium said:\n%s", err, out)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 800 {
		t.Errorf("screenshot is %dx%d, want 1280x800", b.Dx(), b.Dy())
	}
	if n := distinctColours(img, 64); n < 8 {
		t.Errorf("screenshot has %d distinct colours; the page did not render", n)
	}
	if p := os.Getenv("KUMO_UI_SHOT"); p != "" {
		if b, err := os.ReadFile(shot); err == nil {
			os.WriteFile(p, b, 0o644)
		}
	}

	dom := runChromium(t, bin, append(common, "--dump-dom", url)...)
	if n := strings.Count(dom, `<tr class="server">`); n != 4 {
		t.Errorf("dumped DOM has %d server rows, want 4:\n%s", n, dom)
	}
	for _, want := range []string{"10.0.1.1:19800", "10.0.1.3:19800", "clock 11", "10.0.2.2:51034", "<progress"} {
		if !strings.Contains(dom, want) {
			t.Errorf("dumped DOM lacks %q", want)
		}
	}
}

func findChromium(t *testing.T) string {
	for _, name := range []string{os.Getenv("KUMO_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("KUMO_UI_TEST=1 but no chromium in PATH (run scripts/test-ui.sh, or set KUMO_CHROMIUM)")
	return ""
}

// runChromium runs one headless Chromium and returns its stdout; stderr is
// kept for the failure message.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// distinctColours counts the distinct colours of img, up to limit.
func distinctColours(img image.Image, limit int) int {
	seen := make(map[[4]uint32]bool)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}
