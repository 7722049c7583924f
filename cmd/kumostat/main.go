// Command kumostat reads status counters and hash spaces from kumo-servers,
// as the kumofs tool of the same name does:
//
//	kumostat server-address[:port=19800] command
//	kumostat -m manager-address[:port=19700] command
//
// With -m it asks the manager for the node list and prints, for every
// attached active server, "host:port:  " followed by that server's answer.
// Commands: pid, uptime, time, version, cmd_get, cmd_set, cmd_delete, items,
// stats, rhs, whs, hscheck, replstat. A failed call prints "error: ..." and
// the exit status is 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"kumofs/internal/cli"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Default ports of addresses given without one.
const (
	ServerDefaultPort  = 19800
	ManagerDefaultPort = 19700
)

// callTimeout bounds every call, connecting included.
var callTimeout = 5 * time.Second

// errBadReply means an answer does not have the expected shape.
var errBadReply = errors.New("bad reply")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// synopsis is kumofs's usage text (the option table follows it).
var synopsis = fmt.Sprintf(`Usage: kumostat server-address[:port=%d] command
       kumostat -m manager-address[:port=%d] command
command:
   pid                        get pid of server process
   uptime                     get uptime
   time                       get UNIX time
   version                    get version
   cmd_get                    get number of get requests
   cmd_set                    get number of set requests
   cmd_delete                 get number of delete requests
   items                      get number of stored items
   stats                      get memcached-style statistics
   rhs                        get rhs (routing table for Get)
   whs                        get whs (routing table for Set/Delete)
   hscheck                    check if rhs == whs
   replstat                   get replace status`, ServerDefaultPort, ManagerDefaultPort)

// A command asks one server and returns the text to print, without the
// final newline.
type command func(s *session) (string, error)

// scalar returns the command printing the GetStatus(code) answer.
func scalar(code uint32) command {
	return func(s *session) (string, error) {
		b, err := s.status(code)
		if err != nil {
			return "", err
		}
		return valueString(b)
	}
}

var commands = map[string]command{
	"pid":        scalar(wire.StatPID),
	"uptime":     scalar(wire.StatUptime),
	"time":       scalar(wire.StatTime),
	"version":    scalar(wire.StatVersion),
	"cmd_get":    scalar(wire.StatCmdGet),
	"cmd_set":    scalar(wire.StatCmdSet),
	"cmd_delete": scalar(wire.StatCmdDelete),
	"items":      scalar(wire.StatDBItems),
	"stats":      stats,
	"rhs":        hashSpace(wire.StatRHS),
	"whs":        hashSpace(wire.StatWHS),
	"hscheck":    hscheck,
	"replstat":   replstat,
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.New("kumostat", synopsis)
	fs.AllowArgs()
	fs.Stdout, fs.Stderr = stdout, stderr
	code := -1
	fs.ExitFunc = func(c int) { code = c }
	usageError := func(msg string) int {
		fs.Exit(errors.New(msg))
		return code
	}
	var manager bool
	fs.Bool(&manager, "-m", "--manager", "ask every attached active server of this manager")
	if fs.Exit(fs.Parse(args)); code >= 0 {
		return code
	}
	args = fs.Args()
	if len(args) < 2 {
		return usageError("too few arguments")
	}
	if len(args) > 2 {
		return usageError("unexpected argument: " + args[2])
	}
	cmd, ok := commands[args[1]]
	if !ok {
		return usageError("unknown command " + args[1])
	}
	defPort := ServerDefaultPort
	if manager {
		defPort = ManagerDefaultPort
	}
	addr, err := ring.ParseAddr(args[0], defPort)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	if !manager {
		out, err := runOn(addr, cmd)
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		fmt.Fprintln(stdout, out)
		return 0
	}
	servers, err := activeServers(addr)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	status := 0
	for _, a := range servers {
		out, err := runOn(a, cmd)
		if err != nil {
			out, status = "error: "+err.Error(), 1
		}
		fmt.Fprintf(stdout, "%s:  %s\n", a, out)
	}
	return status
}

// runOn runs cmd against the server at addr.
func runOn(addr ring.Addr, cmd command) (string, error) {
	s := dial(addr)
	defer s.close()
	return cmd(s)
}

// activeServers asks the manager for its whs and returns the attached
// active servers in node-list order.
func activeServers(mgr ring.Addr) ([]ring.Addr, error) {
	s := dial(mgr)
	defer s.close()
	b, err := s.call(wire.MgrGetNodesInfo, func(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) })
	if err != nil {
		return nil, err
	}
	n, b, err := msgpack.ReadArrayHeader(b)
	if err != nil || n < 2 {
		return nil, fmt.Errorf("%w from manager %s: GetNodesInfo is not [wseed, newcomers]", errBadReply, mgr)
	}
	hs, _, err := ring.ReadSeed(b)
	if err != nil {
		return nil, fmt.Errorf("%w from manager %s: %w", errBadReply, mgr, err)
	}
	var out []ring.Addr
	for _, nd := range hs.Nodes() {
		if nd.Active {
			out = append(out, nd.Addr)
		}
	}
	return out, nil
}

// session is a connection to one daemon.
type session struct {
	addr ring.Addr
	c    *rpc.Client

	mu      sync.Mutex // protects downErr
	downErr error      // the last connection error the client reported
}

func dial(addr ring.Addr) *session {
	s := &session{addr: addr}
	s.c = rpc.Dial(addr.AddrPort().String(), rpc.Options{
		CallTimeout: callTimeout,
		DialTimeout: callTimeout,
		Logf:        func(string, ...any) {}, // the one error line is ours
		OnDown: func(_ int, err error) {
			s.mu.Lock()
			s.downErr = err
			s.mu.Unlock()
		},
	})
	return s
}

func (s *session) close() { s.c.Close() }

// call makes one call within callTimeout and returns a copy of the result.
func (s *session) call(method uint32, params func([]byte) []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := s.c.Call(ctx, method, params)
	if err != nil {
		var re *rpc.Error
		if errors.As(err, &re) {
			role := "server"
			if method == wire.MgrGetNodesInfo {
				role = "manager"
			}
			return nil, fmt.Errorf("%s: %w", s.addr, rpc.WrongRole(err, role))
		}
		s.mu.Lock()
		if s.downErr != nil {
			err = s.downErr
		}
		s.mu.Unlock()
		return nil, fmt.Errorf("cannot reach %s: %w", s.addr, err)
	}
	defer res.Release()
	return append([]byte(nil), res.Bytes()...), nil
}

// status calls GetStatus(code).
func (s *session) status(code uint32) ([]byte, error) {
	return s.call(wire.SrvGetStatus, func(b []byte) []byte {
		return msgpack.AppendUint(msgpack.AppendArrayHeader(b, 1), uint64(code))
	})
}

// valueString renders a scalar answer: integers and booleans in decimal
// and true/false, strings bare, nil as "nil".
func valueString(b []byte) (string, error) {
	var s string
	var rest []byte
	var err error
	switch msgpack.NextType(b) {
	case msgpack.NilType:
		s, rest, err = "nil", b[1:], nil
	case msgpack.BoolType:
		var v bool
		v, rest, err = msgpack.ReadBool(b)
		s = strconv.FormatBool(v)
	case msgpack.IntType:
		var v int64
		if v, rest, err = msgpack.ReadInt(b); err == nil {
			s = strconv.FormatInt(v, 10)
		} else {
			var u uint64
			u, rest, err = msgpack.ReadUint(b)
			s = strconv.FormatUint(u, 10)
		}
	case msgpack.RawType:
		var v []byte
		v, rest, err = msgpack.ReadRaw(b)
		s = string(v)
	default:
		return "", fmt.Errorf("%w: unexpected %v", errBadReply, msgpack.NextType(b))
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", errBadReply, err)
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("%w: %d trailing bytes", errBadReply, len(rest))
	}
	return s, nil
}

// stats prints the memcached-style block of kumostat 0.4.8+.
func stats(s *session) (string, error) {
	items := []struct {
		name string
		code uint32
	}{
		{"pid", wire.StatPID},
		{"uptime", wire.StatUptime},
		{"time", wire.StatTime},
		{"cmd_get", wire.StatCmdGet},
		{"cmd_set", wire.StatCmdSet},
		{"cmd_delete", wire.StatCmdDelete},
		{"curr_items", wire.StatDBItems},
	}
	var out strings.Builder
	for _, it := range items {
		b, err := s.status(it.code)
		if err != nil {
			return "", err
		}
		v, err := valueString(b)
		if err != nil {
			return "", err
		}
		out.WriteString("STAT " + it.name + " " + v + "\n")
	}
	out.WriteString("END")
	return out.String(), nil
}

// formatTimestamp formats a hash space clocktime as kumofs's Ruby tools do
// (Ruby >= 1.9 Time#to_s in the local zone, then the counter).
func formatTimestamp(clocktime uint64) string {
	t := time.Unix(int64(clocktime>>32), 0).In(time.Local)
	return t.Format("2006-01-02 15:04:05 -0700") + " clock " + strconv.FormatUint(clocktime&0xffffffff, 10)
}

// hashSpace returns the command printing the rhs or whs seed.
func hashSpace(code uint32) command {
	return func(s *session) (string, error) {
		b, err := s.status(code)
		if err != nil {
			return "", err
		}
		hs, _, err := ring.ReadSeed(b)
		if err != nil {
			return "", fmt.Errorf("%w: %w", errBadReply, err)
		}
		var out strings.Builder
		out.WriteString("hash space timestamp:\n  " + formatTimestamp(hs.Clock()) + "\nnode:")
		for _, nd := range hs.Nodes() {
			state := "fault"
			if nd.Active {
				state = "active"
			}
			out.WriteString("\n  " + nd.Addr.String() + "  (" + state + ")")
		}
		return out.String(), nil
	}
}

// hscheck compares the rhs and whs seeds as whole values (node list and
// timestamp), as kumofs does.
func hscheck(s *session) (string, error) {
	r, err := s.status(wire.StatRHS)
	if err != nil {
		return "", err
	}
	w, err := s.status(wire.StatWHS)
	if err != nil {
		return "", err
	}
	rs, _, err := ring.ReadSeed(r)
	if err != nil {
		return "", fmt.Errorf("%w: rhs: %w", errBadReply, err)
	}
	ws, _, err := ring.ReadSeed(w)
	if err != nil {
		return "", fmt.Errorf("%w: whs: %w", errBadReply, err)
	}
	return strconv.FormatBool(rs.Clock() == ws.Clock() && rs.Equal(ws)), nil
}

// replstat names the STAT_REPLACE bits as kumofs 0.4.13 does.
func replstat(s *session) (string, error) {
	b, err := s.status(wire.StatReplace)
	if err != nil {
		return "", err
	}
	if msgpack.IsNil(b) {
		return "nil", nil
	}
	v, _, err := msgpack.ReadUint(b)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errBadReply, err)
	}
	switch {
	case v&wire.ReplInactive != 0:
		return "inactive", nil
	case v&wire.ReplDeleting != 0:
		return "Deleting", nil
	case v&wire.ReplCopying != 0:
		return "Copying", nil
	case v&wire.ReplWait != 0:
		return "WAIT", nil
	}
	return "ready", nil
}
