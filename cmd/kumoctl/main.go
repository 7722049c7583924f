// Command kumoctl administers a kumo cluster through a kumo-manager, as the
// kumofs tool of the same name does:
//
//	kumoctl address[:port=19700] command [options]
//
// Commands: status (alias stat), attach, attach-noreplace, detach,
// detach-noreplace, replace, full-replace, backup [suffix],
// enable-auto-replace, disable-auto-replace. The output is kumofs's,
// byte for byte; a failed call prints one line "error: ..." on stderr and
// exits 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"kumofs/internal/cli"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// ManagerDefaultPort is used when the address has no port.
const ManagerDefaultPort = 19700

// callTimeout bounds every call to the manager, connecting included.
var callTimeout = 5 * time.Second

// now is the clock for the default backup suffix; tests replace it.
var now = time.Now

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// synopsis is kumofs's usage text (the option table follows it).
func synopsis() string {
	return fmt.Sprintf(`Usage: kumoctl address[:port=%d] command [options]
command:
   status                     get status
   attach                     attach all new servers and start replace
   attach-noreplace           attach all new servers
   detach                     detach all fault servers and start replace
   detach-noreplace           detach all fault servers
   replace                    start replace without attach/detach
   full-replace               start full replace without attach/detach
   backup  [suffix=%s]  create backup with specified suffix
   enable-auto-replace        enable auto replace
   disable-auto-replace       disable auto replace`, ManagerDefaultPort, now().Format("20060102"))
}

// command is one kumoctl command: the RPC and its parameters.
type command struct {
	method uint32
	params func(b []byte) []byte
}

func boolParam(v bool) func([]byte) []byte {
	return func(b []byte) []byte {
		return msgpack.AppendBool(msgpack.AppendArrayHeader(b, 1), v)
	}
}

func noParams(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) }

// simple holds the commands that print the Ruby `p` of their result.
var simple = map[string]command{
	"attach":               {wire.MgrAttachNewServers, boolParam(true)},
	"attach-noreplace":     {wire.MgrAttachNewServers, boolParam(false)},
	"detach":               {wire.MgrDetachFaultServers, boolParam(true)},
	"detach-noreplace":     {wire.MgrDetachFaultServers, boolParam(false)},
	"replace":              {wire.MgrStartReplace, noParams},
	"full-replace":         {wire.MgrStartReplace, boolParam(true)},
	"enable-auto-replace":  {wire.MgrSetAutoReplace, boolParam(true)},
	"disable-auto-replace": {wire.MgrSetAutoReplace, boolParam(false)},
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.New("kumoctl", synopsis())
	fs.AllowArgs()
	fs.Stdout, fs.Stderr = stdout, stderr
	code := -1
	fs.ExitFunc = func(c int) { code = c }
	// usageError prints the usage and "error: msg", as for a bad option.
	usageError := func(msg string) int {
		fs.Exit(errors.New(msg))
		return code
	}
	if fs.Exit(fs.Parse(args)); code >= 0 {
		return code
	}
	args = fs.Args()
	for _, a := range args {
		if a == "-h" || a == "--help" { // also after the address: kumoctl MGR -h
			fs.Exit(fs.Parse([]string{a}))
			return code
		}
	}
	if len(args) < 2 {
		return usageError("too few arguments")
	}
	addr, cmd, rest := args[0], args[1], args[2:]
	mgr, err := ring.ParseAddr(addr, ManagerDefaultPort)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	switch cmd {
	case "stat", "status":
		if len(rest) != 0 {
			return usageError("unexpected argument: " + rest[0])
		}
		res, err := call(mgr, wire.MgrGetNodesInfo, noParams)
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		out, err := formatStatus(res)
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		io.WriteString(stdout, out)
		return 0
	case "backup":
		if len(rest) > 1 {
			return usageError("unexpected argument: " + rest[1])
		}
		suffix := now().Format("20060102")
		if len(rest) == 1 {
			suffix = rest[0]
		}
		// An empty one goes to the manager, which answers "empty suffix"
		// as kumofs's does.
		if err := wire.CheckBackupSuffix([]byte(suffix)); err != nil && suffix != "" {
			return usageError(strings.TrimPrefix(err.Error(), "wire: ") + ": " + suffix)
		}
		fmt.Fprintf(stdout, "suffix=%s\n", suffix)
		return printCall(mgr, command{wire.MgrCreateBackup, func(b []byte) []byte {
			return msgpack.AppendString(msgpack.AppendArrayHeader(b, 1), suffix)
		}}, stdout, stderr)
	}
	c, ok := simple[cmd]
	if !ok {
		fmt.Fprintf(stdout, "unknown command %s\n\n", cmd)
		return usageError("unknown command " + cmd)
	}
	if len(rest) != 0 {
		return usageError("unexpected argument: " + rest[0])
	}
	return printCall(mgr, c, stdout, stderr)
}

// printCall makes the call and prints the Ruby inspection of its result.
func printCall(mgr ring.Addr, c command, stdout, stderr io.Writer) int {
	res, err := call(mgr, c.method, c.params)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	s, err := inspect(res)
	if err != nil {
		fmt.Fprintln(stderr, "error: bad reply:", err)
		return 1
	}
	fmt.Fprintln(stdout, s)
	return 0
}

// call makes one RPC to addr, connecting included, within callTimeout, and
// returns a copy of the msgpack result.
func call(addr ring.Addr, method uint32, params func([]byte) []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var down rpc.DownCause
	c := rpc.Dial(addr.AddrPort().String(), rpc.Options{
		CallTimeout: callTimeout,
		DialTimeout: callTimeout,
		Logf:        func(string, ...any) {}, // the one error line is ours
		OnDown:      down.Set,
	})
	defer c.Close()
	res, err := c.Call(ctx, method, params)
	if err != nil {
		var re *rpc.Error
		if errors.As(err, &re) {
			return nil, fmt.Errorf("manager %s: %w", addr, rpc.WrongRole(err, "manager"))
		}
		err = down.Explain(err)
		return nil, fmt.Errorf("cannot reach manager %s: %w", addr, err)
	}
	defer res.Release()
	return append([]byte(nil), res.Bytes()...), nil
}
