// Package durable makes file system changes survive a crash: a folder's
// entries synced to disk, and a small file replaced whole or not at all.
package durable

import (
	"os"
	"path/filepath"
)

// SyncDir fsyncs the folder dir, so that a create or rename in it is
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFile replaces path with data durably: it writes path.tmp, fsyncs
// it, renames it over path and fsyncs the folder. A crash leaves either
// the old file or the new one (and perhaps a stale path.tmp). On an error
// path.tmp is removed.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}
