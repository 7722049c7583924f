// Package localcluster starts a whole kumo cluster — managers, servers and a
// gateway — as real child processes on 127.0.0.1. The one-command cluster
// (cmd/kumo-local, `make run`) and every integration test start the system
// through this package, so both run it the same way.
//
// A test package uses it like this:
//
//	func TestMain(m *testing.M) { localcluster.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		c := localcluster.StartT(t, localcluster.Options{})
//		// talk memcached to c.Gateway(), kill c.Server(1), run c.Ctl("status") ...
//	}
//
// The binaries are built once per test binary (or taken from the directory
// named by the environment variable KUMO_BIN_DIR).
package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// EnvBinDir names the environment variable that points at a directory of
// prebuilt binaries; when set, nothing is built.
const EnvBinDir = "KUMO_BIN_DIR"

// Errors of this package.
var (
	// ErrNoModule means no go.mod was found above the working directory.
	ErrNoModule = errors.New("localcluster: go.mod not found")
	// ErrNotStarted means a process was used before Start.
	ErrNotStarted = errors.New("localcluster: process not started")
	// ErrRunning means Start was called on a process that is running.
	ErrRunning = errors.New("localcluster: process already running")
	// ErrExited means a process exited while it was waited for.
	ErrExited = errors.New("localcluster: process exited")
	// ErrTimeout means a condition did not come true before its deadline.
	ErrTimeout = errors.New("localcluster: timeout")
	// ErrStopped means the cluster was stopped.
	ErrStopped = errors.New("localcluster: cluster stopped")
)

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("localcluster: %w", err)
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoModule
		}
		dir = parent
	}
}

// goTool returns the go command: the one on PATH, else the one of the
// toolchain that built this binary.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := runtime.GOROOT(); root != "" { //nolint:staticcheck // fallback only
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// Build compiles every command of the module (./cmd/...) with CGO_ENABLED=0
// and -trimpath into a new temporary directory and returns it. The caller
// removes the directory when done.
func Build(ctx context.Context) (binDir string, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "kumo-bin-")
	if err != nil {
		return "", fmt.Errorf("localcluster: %w", err)
	}
	// One retry: a build cache shared with concurrent builds sometimes
	// fails an import ("could not import ..."); a real compile error fails
	// again, quickly.
	if err := BuildInto(ctx, root, dir); err != nil {
		if err = BuildInto(ctx, root, dir); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// BuildInto compiles ./cmd/... of the module at root into dir.
func BuildInto(ctx context.Context, root, dir string) error {
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("localcluster: go build ./cmd/...: %w\n%s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// The binaries shared by the tests of one test binary, built on first use.
var shared struct {
	once    sync.Once
	dir     string
	err     error
	cleanup bool // dir was built here and is removed by Main
}

// BinDir returns the directory of binaries for tests: $KUMO_BIN_DIR when set,
// otherwise one built on the first call and shared by the whole test binary
// (Main removes it at the end). Nothing is built when no test asks.
func BinDir() (string, error) {
	shared.once.Do(func() {
		if d := os.Getenv(EnvBinDir); d != "" {
			shared.dir, shared.err = filepath.Abs(d)
			return
		}
		shared.dir, shared.err = Build(context.Background())
		shared.cleanup = shared.err == nil
	})
	return shared.dir, shared.err
}

// Main runs the tests of m and exits; it removes the binaries that BinDir
// built. Use it as the body of TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.cleanup {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}
