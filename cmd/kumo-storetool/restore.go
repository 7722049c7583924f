package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"kumofs/internal/durable"
	"kumofs/store"
)

// sideFiles are the files a kumo-server keeps next to its store that a
// restore must remove (docs/backup.md, step 4): the flush point, which
// would hide every restored record older than the last flush_all, and the
// time the store was last current, which would make the server count
// itself as away and drop restored records.
var sideFiles = []string{".flush", ".current"}

// runRestore copies a backup (or kumomergedb's merged file) over a
// server's store and removes the server's side files, so that the
// server, started next, serves exactly the restored data.
func runRestore(args []string, w io.Writer) error {
	rest, err := parse(flag.NewFlagSet("restore", flag.ContinueOnError), args, 2, 2)
	if err != nil {
		return err
	}
	src, dst := rest[0], rest[1]
	if same, err := sameFile(src, dst); err != nil || same {
		if err == nil {
			err = errors.New("the backup and the store are the same file")
		}
		return err
	}
	rep, err := store.Verify(src)
	if err != nil {
		return fmt.Errorf("backup %s: %w", src, err)
	}
	// A running server holds its store locked: opening it tells. A
	// missing store is fine (a new machine); so is one that is not a
	// store any more (the damage the restore is for).
	if _, err := os.Stat(dst); err == nil {
		db, err := store.Open(dst, &store.Options{Sync: store.SyncNone})
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%s: %w", dst, err)
		}
		if err == nil {
			// Held until the copy is renamed over it, so a server
			// starting meanwhile fails instead of opening the old file.
			defer db.Close()
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	var removed []string
	for _, suffix := range sideFiles {
		err := os.Remove(dst + suffix)
		if err == nil {
			removed = append(removed, dst+suffix)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := durable.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	fmt.Fprintf(w, "restored %s to %s: %d records\n", src, dst, rep.Records)
	for _, p := range removed {
		fmt.Fprintf(w, "removed %s\n", p)
	}
	return nil
}

// sameFile reports whether a and b name one file (b may not exist).
func sameFile(a, b string) (bool, error) {
	ai, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	bi, err := os.Stat(b)
	if err != nil {
		return false, nil
	}
	return os.SameFile(ai, bi), nil
}

// copyFile writes src to dst.restore, syncs it and renames it over dst,
// so that dst is either the old file or the whole copy. The copy gets a
// new modification time (never the backup's, which could look like a
// store last current long ago).
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".restore"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
