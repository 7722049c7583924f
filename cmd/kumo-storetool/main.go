// Command kumo-storetool creates, inspects, checks, repairs and rebuilds
// kumo store files, mirroring Tokyo Cabinet's tchmgr, and benchmarks the
// store with tchtest's record pattern.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kumofs/internal/cli"
	"kumofs/ring"
	"kumofs/store"
)

const usage = `usage:
  kumo-storetool create PATH [BNUM]          create an empty store with BNUM slots
  kumo-storetool inform PATH                 print the store's figures (like tchmgr inform)
  kumo-storetool optimize PATH [BNUM]        rebuild with BNUM slots (default 2 x records), dropping dead records
  kumo-storetool verify PATH                 check every record and slot, change nothing
  kumo-storetool repair PATH                 rebuild from every undamaged record
  kumo-storetool restore BACKUP PATH         verify BACKUP, copy it over a stopped server's store
                                             at PATH and remove PATH.flush and PATH.current
  kumo-storetool list [-pv] PATH             print keys (with -pv: key TAB value), not deleted ones; a server's keys without their hash
  kumo-storetool get PATH KEY                print a key's value and metadata (a memcached key of a server too)
  kumo-storetool put [-flags N] [-exptime N] [-clock N] PATH KEY VALUE
  kumo-storetool out PATH KEY                remove a key
  kumo-storetool bench write [-rnd] [-sync POLICY] PATH RNUM [BNUM]
  kumo-storetool bench read [-rnd] PATH
A store held by a running server cannot be changed (store: locked).
`

func main() {
	err := run(os.Args[1:], os.Stdout)
	switch {
	case err == nil:
		return
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(os.Stdout, usage)
		return
	case errors.Is(err, errVersion):
		fmt.Fprintf(os.Stdout, "kumo-storetool kumo %s\n", cli.Version)
		return
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stdout, usage)
	}
	fmt.Fprintln(os.Stderr, errorLine(err))
	os.Exit(1)
}

// errorLine is the one line every kumo binary reports an error with
// (SPEC §2), with what to do about a store in use.
func errorLine(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if errors.Is(err, store.ErrLocked) {
		msg = "the store is in use by another process (a running kumo-server: stop it, or work on a copy made with kumoctl backup): " + msg
	}
	return "error: " + msg
}

var (
	errUsage   = errors.New("bad arguments")
	errVersion = errors.New("version requested")
)

func run(args []string, w io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		return flag.ErrHelp
	case "--version", "-version", "version":
		return errVersion
	case "create":
		return runCreate(args, w)
	case "inform":
		return runInform(args, w)
	case "optimize":
		return runOptimize(args, w)
	case "verify":
		return runVerify(args, w)
	case "repair":
		return runRepair(args, w)
	case "restore":
		return runRestore(args, w)
	case "list":
		return runList(args, w)
	case "get":
		return runGet(args, w)
	case "put":
		return runPut(args, w)
	case "out":
		return runOut(args, w)
	case "bench":
		return runBench(args, w)
	}
	return fmt.Errorf("unknown command %q: %w", cmd, errUsage)
}

// parse parses flags of a subcommand and checks the positional count.
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %v: %w", fs.Name(), err, errUsage)
	}
	rest := fs.Args()
	if len(rest) < minArgs || len(rest) > maxArgs {
		return nil, fmt.Errorf("%s: %w", fs.Name(), errUsage)
	}
	return rest, nil
}

func parseNum(s, what string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s %q", what, s)
	}
	return n, nil
}

func runCreate(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("create", flag.ContinueOnError), args, 1, 2)
	if err != nil {
		return err
	}
	var bnum uint64
	if len(rest) == 2 {
		if bnum, err = parseNum(rest[1], "bucket number"); err != nil {
			return err
		}
	}
	return store.Create(rest[0], bnum)
}

func runInform(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("inform", flag.ContinueOnError), args, 1, 1)
	if err != nil {
		return err
	}
	st, err := store.Inform(rest[0])
	if err != nil {
		return err
	}
	var ino uint64
	if fi, err := os.Stat(rest[0]); err == nil {
		if s, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = s.Ino
		}
	}
	pct := func(a, b uint64) float64 {
		if b == 0 {
			return 0
		}
		return 100 * float64(a) / float64(b)
	}
	fmt.Fprintf(w, "path: %s\n", st.Path)
	fmt.Fprintf(w, "database type: kumo hash\n")
	fmt.Fprintf(w, "format version: 1\n")
	fmt.Fprintf(w, "additional flags:%s\n", flagsString(st.Flags))
	fmt.Fprintf(w, "bucket number: %d\n", st.Buckets)
	fmt.Fprintf(w, "alignment: %d\n", st.Alignment)
	fmt.Fprintf(w, "record number: %d\n", st.Records)
	fmt.Fprintf(w, "used slots: %d\n", st.UsedSlots)
	fmt.Fprintf(w, "deleted slots: %d\n", st.DeletedSlots)
	fmt.Fprintf(w, "load: %.1f%%\n", pct(st.UsedSlots+st.DeletedSlots, st.Buckets))
	fmt.Fprintf(w, "live bytes: %d\n", st.LiveBytes)
	fmt.Fprintf(w, "dead bytes: %d (%.1f%%)\n", st.DeadBytes, pct(st.DeadBytes, st.DeadBytes+st.LiveBytes))
	fmt.Fprintf(w, "checkpoint: %d\n", st.Checkpoint)
	fmt.Fprintf(w, "file size: %d\n", st.FileSize)
	fmt.Fprintf(w, "inode number: %d\n", ino)
	fmt.Fprintf(w, "modified time: %s\n", st.Modified.UTC().Format(time.RFC3339))
	return nil
}

func flagsString(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return " " + strings.Join(f, " ")
}

func runOptimize(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("optimize", flag.ContinueOnError), args, 1, 2)
	if err != nil {
		return err
	}
	var bnum uint64
	if len(rest) == 2 {
		if bnum, err = parseNum(rest[1], "bucket number"); err != nil {
			return err
		}
	}
	if _, err := os.Stat(rest[0]); err != nil {
		return err
	}
	db, err := store.Open(rest[0], &store.Options{Sync: store.SyncNone})
	if err != nil {
		return err
	}
	if n := uint64(db.Len()); bnum != 0 && bnum <= n {
		db.Close()
		return fmt.Errorf("bucket number %d is too small for the store's %d records (choose more, e.g. %d, or leave it out for 2 x records)", bnum, n, 2*n)
	}
	if err := db.Optimize(bnum); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

func runVerify(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("verify", flag.ContinueOnError), args, 1, 1)
	if err != nil {
		return err
	}
	rep, err := store.Verify(rest[0])
	if err != nil && !errors.Is(err, store.ErrCorrupt) {
		return err // nothing was checked (locked, unreadable, not a store)
	}
	fmt.Fprintf(w, "records: %d\nlive slots: %d\nbad records: %d\nbad slots: %d\ntorn tail bytes: %d\n",
		rep.Records, rep.Live, len(rep.Bad), rep.BadSlots, rep.TailCut)
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) && len(rep.Bad) > 0 {
			return fmt.Errorf("%w (first bad record at offset %d)", err, rep.Bad[0])
		}
		return err
	}
	fmt.Fprintln(w, "ok")
	return nil
}

func runRepair(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("repair", flag.ContinueOnError), args, 1, 1)
	if err != nil {
		return err
	}
	rep, err := store.Repair(rest[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "scanned records: %d\nrecovered keys: %d\nskipped regions: %d\n", rep.Scanned, rep.Recovered, len(rep.Skipped))
	return nil
}

// openExisting opens the store at path, which must exist and be a store:
// the tool never creates one where an operator asked to look (an empty
// file would otherwise become a new store).
func openExisting(path string) (*store.DB, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil, fmt.Errorf("%s: %w", path, store.ErrBadHeader)
	}
	return store.Open(path, &store.Options{Sync: store.SyncNone})
}

// serverKey returns the memcached key of a server's stored key (kumofs's
// layout: BE64(hash of the key) ‖ key, see wire.AppendDBKey), and false
// for a key not in that layout (a store written by put or the benchmark).
func serverKey(k []byte) ([]byte, bool) {
	if len(k) <= 8 || binary.BigEndian.Uint64(k) != ring.Hash(k[8:]) {
		return nil, false
	}
	return k[8:], true
}

// lookup finds key in db as given or, failing that, as a server stores a
// memcached key (with its hash in front); it returns the stored key found.
func lookup(db *store.DB, key []byte) (store.Record, []byte, error) {
	rec, _, err := db.Get(key, nil)
	if errors.Is(err, store.ErrNotFound) {
		dk := binary.BigEndian.AppendUint64(nil, ring.Hash(key))
		dk = append(dk, key...)
		if r, _, err2 := db.Get(dk, nil); err2 == nil || !errors.Is(err2, store.ErrNotFound) {
			return r, dk, err2
		}
	}
	return rec, key, err
}

func runList(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	pv := fs.Bool("pv", false, "print values too")
	rest, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	db, err := openExisting(rest[0])
	if err != nil {
		return err
	}
	err = db.ForEach(func(rec *store.Record) error {
		if rec.Tombstone {
			return nil // a deleted key, kept for -gX: get shows it
		}
		key := rec.Key
		if k, ok := serverKey(key); ok {
			key = k // a server's record: print the memcached key
		}
		if *pv {
			_, err := fmt.Fprintf(w, "%s\t%s\n", key, rec.Value)
			return err
		}
		_, err := fmt.Fprintf(w, "%s\n", key)
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func runGet(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("get", flag.ContinueOnError), args, 2, 2)
	if err != nil {
		return err
	}
	db, err := openExisting(rest[0])
	if err != nil {
		return err
	}
	defer db.Close()
	rec, _, err := lookup(db, []byte(rest[1]))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", rec.Value)
	fmt.Fprintf(w, "clock: %d (%s, counter %d)\nflags: %d\nexptime: %d\ntombstone: %v\n", rec.Clock,
		time.Unix(int64(rec.Clock>>32), 0).UTC().Format(time.RFC3339), rec.Clock&0xffffffff, rec.Flags, rec.Exptime, rec.Tombstone)
	if rec.Cas != 0 {
		fmt.Fprintf(w, "cas: %d (kept by a touch)\n", rec.Cas)
	}
	return nil
}

func runPut(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	flags := fs.Uint("flags", 0, "memcached flags")
	exptime := fs.Uint("exptime", 0, "absolute expiry, unix seconds")
	clock := fs.Uint64("clock", 0, "ClockTime (default: now << 32)")
	rest, err := parse(fs, args, 3, 3)
	if err != nil {
		return err
	}
	db, err := openExisting(rest[0])
	if err != nil {
		return err
	}
	c := *clock
	if c == 0 {
		c = uint64(time.Now().Unix()) << 32
	}
	err = db.Put(&store.Record{Key: []byte(rest[1]), Value: []byte(rest[2]), Clock: c, Flags: uint32(*flags), Exptime: uint32(*exptime)})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func runOut(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("out", flag.ContinueOnError), args, 2, 2)
	if err != nil {
		return err
	}
	db, err := openExisting(rest[0])
	if err != nil {
		return err
	}
	_, key, err := lookup(db, []byte(rest[1]))
	ok := false
	if err == nil {
		ok, err = db.Delete(key, nil)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	return err
}
