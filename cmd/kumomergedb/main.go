// Command kumomergedb merges kumo store files into one, as the kumofs tool
// of the same name does:
//
//	kumomergedb DST SRC...
//
// The sources are server stores or backups written by "kumoctl backup"
// (<-s path>-<suffix> on every server). For every key the version with the
// newest ClockTime wins, tombstones included: a newer tombstone beats an
// older value, so a key deleted before the backup stays deleted after the
// restore, and a newer value beats an older tombstone. On equal clocks the
// destination keeps what it has. DST is created if it does not exist and may
// already hold data; it is merged into. One source is enough (kumofs required
// two).
//
// The output is kumofs's:
//
//	merging SRC...  merged M records of T records
//	closing DST...
//	done.
//
// where T counts the source's records (tombstones included) and M those that
// won. An error prints one line "error: ..." on stderr and exits 1.
//
// The store has no read-only mode, so sources are opened normally (without
// periodic syncs): they are backups, not live files. Opening recovers a
// source the way a server would (a torn tail is cut). A source held by a
// running kumo-server is refused.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"kumofs/internal/cli"
	"kumofs/store"
)

const synopsis = "usage: kumomergedb <dst> <src>..."

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.New("kumomergedb", synopsis)
	fs.AllowArgs()
	fs.Stdout, fs.Stderr = stdout, stderr
	code := -1
	fs.ExitFunc = func(c int) { code = c }
	if fs.Exit(fs.Parse(args)); code >= 0 {
		return code
	}
	args = fs.Args()
	if len(args) < 2 {
		fs.Exit(errors.New("too few arguments"))
		return code
	}
	if err := merge(args[0], args[1:], stdout); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

// merge merges every source into dst, printing kumofs's progress lines.
// All sources are opened (and checked) before dst is touched.
func merge(dst string, srcs []string, out io.Writer) (err error) {
	dbs := make([]*store.DB, 0, len(srcs))
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	var records, buckets uint64
	for i, src := range srcs {
		if err := checkSource(src, dst, srcs[:i]); err != nil {
			return err
		}
		db, err := store.Open(src, &store.Options{Sync: store.SyncNone})
		if err != nil {
			return openError(src, err)
		}
		dbs = append(dbs, db)
		st := db.Stats()
		records += st.Records
		buckets = max(buckets, st.Buckets)
	}

	// A new destination gets room for every source record twice over, and
	// at least the bucket number of the largest source, so that a server
	// restored from it is no smaller than the one backed up.
	d, err := store.Open(dst, &store.Options{Sync: store.SyncNone, Buckets: max(buckets, 2*records, 1024)})
	if err != nil {
		return openError(dst, err)
	}
	defer func() {
		if d != nil {
			d.Close()
		}
	}()
	for i, db := range dbs {
		fmt.Fprintf(out, "merging %s...  ", srcs[i])
		merged, total, err := mergeOne(d, db)
		if err != nil {
			fmt.Fprintln(out)
			return fmt.Errorf("merging %s into %s: %w", srcs[i], dst, err)
		}
		fmt.Fprintf(out, "merged %d records of %d records\n", merged, total)
	}
	fmt.Fprintf(out, "closing %s...\n", dst)
	err = d.Close()
	d = nil
	if err != nil {
		return fmt.Errorf("closing %s: %w", dst, err)
	}
	fmt.Fprintln(out, "done.")
	return nil
}

// checkSource refuses a missing or empty source (store.Open would create
// it), the destination itself, and a file given twice.
func checkSource(src, dst string, earlier []string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("source %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("source %s is not a regular file", src)
	}
	if fi.Size() == 0 {
		// store.Open would make a new store of it.
		return fmt.Errorf("source %s is empty, not a kumo store", src)
	}
	if di, err := os.Stat(dst); err == nil && os.SameFile(fi, di) {
		return fmt.Errorf("source %s is the destination", src)
	}
	for _, e := range earlier {
		if ei, err := os.Stat(e); err == nil && os.SameFile(fi, ei) {
			return fmt.Errorf("source %s is given twice", src)
		}
	}
	return nil
}

// openError explains a failed store.Open of path.
func openError(path string, err error) error {
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is locked: a kumo-server (or another tool) has it open; merge a backup (kumoctl backup) or stop the server first", path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: directory %s does not exist", path, filepath.Dir(path))
	}
	return fmt.Errorf("opening %s: %w", path, err)
}

// mergeOne merges every record of src into dst with newest-clock-wins and
// returns how many records won and how many src holds.
func mergeOne(dst, src *store.DB) (merged, total int, err error) {
	var rec store.Record
	newer := func(old *store.Record) bool { return old == nil || old.Clock < rec.Clock }
	err = src.ForEach(func(r *store.Record) error {
		total++
		rec = *r
		ok, err := dst.Update(&rec, newer)
		if errors.Is(err, store.ErrFull) {
			// The destination's bucket array is full: grow it (twice
			// what it will hold) and try once more.
			if err = dst.Optimize(2 * uint64(dst.Len()+src.Len())); err == nil {
				ok, err = dst.Update(&rec, newer)
			}
		}
		if err != nil {
			return err
		}
		if ok {
			merged++
		}
		return nil
	})
	return merged, total, err
}
